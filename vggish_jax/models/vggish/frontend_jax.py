"""The VGGish log-mel frontend in JAX: jit-compiled, batched, the oracle `frontend.py`'s maths and constants.

Input [batch, samples] equal-length 16 kHz waveforms; for unequal lengths right-pad with zeros and mask with
`num_examples(length)` per clip: framing is causal, so every example inside a clip's true length equals the
unpadded result. Examples start every `cfg.example_hop_frames` frames; with `cfg.pad_last` the last partial
one is computed on zeros after the end, as the oracle does.

Precision (`resolve_precision`, for embedding and training): float32 by default, whose FFT error (~1e-7 of a
frame's peak) the log turns into up to ~1e-3 in quiet bands next to loud tones (tests/test_frontend_jax.py);
"float64" (under `jax.enable_x64`; not on TPU) matches the oracle to ~1e-6. Output is float32 either way; the
precision is recorded in the EmbeddingSpec. Formulation: "fft" (default; "auto") frames + XLA rfft; "dft" is
one strided convolution against windowed cos/sin matrices [400, 2k] over the k = 235 bins the mel matrix uses.
On the 2-core CPU rfft measured faster (9.4 vs 11.8 ms per clip of a 16 x 30 s float32 batch;
results/frontend_formulation.json); "dft" is unmeasured on accelerators. Matmuls run at Precision.HIGHEST.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vggish_jax.models.vggish import frontend
from vggish_jax.models.vggish.frontend import DEFAULT, FrontendConfig, num_examples  # noqa: F401  (re-exported)


@functools.lru_cache(maxsize=None)
def _constants(cfg: FrontendConfig):
    return frontend.periodic_hann(cfg.window_length), frontend.mel_matrix(cfg)  # float64; cast per precision


@functools.lru_cache(maxsize=None)
def _dft_constants(cfg: FrontendConfig):
    """(windowed [cos | -sin] DFT matrix [window, 2k], mel rows [k, bands]) over the bins with mel weight."""
    window, mel = _constants(cfg)
    used = np.flatnonzero(mel.any(axis=1))
    lo, hi = int(used[0]), int(used[-1]) + 1
    angle = 2.0 * np.pi * np.arange(cfg.window_length)[:, None] * np.arange(lo, hi)[None, :] / cfg.fft_length
    dft = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * window[:, None]
    return dft, mel[lo:hi]


_HIGHEST = jax.lax.Precision.HIGHEST


def _magnitudes_fft(waveforms: jax.Array, cfg: FrontendConfig) -> tuple[jax.Array, np.ndarray]:
    window, mel = _constants(cfg)
    n = frontend.num_frames(waveforms.shape[-1], cfg)
    idx = np.arange(cfg.window_length)[None, :] + cfg.hop_length * np.arange(n)[:, None]
    frames = waveforms[..., idx] * jnp.asarray(window, waveforms.dtype)
    return jnp.abs(jnp.fft.rfft(frames, n=cfg.fft_length, axis=-1)), mel


def _magnitudes_dft(waveforms: jax.Array, cfg: FrontendConfig) -> tuple[jax.Array, np.ndarray]:
    dft, mel = _dft_constants(cfg)
    lead, samples = waveforms.shape[:-1], waveforms.shape[-1]
    x = waveforms.reshape((-1, 1, samples))
    # A strided VALID convolution is framing + windowed DFT in one op, without materialising the frames.
    y = jax.lax.conv_general_dilated(x, jnp.asarray(dft.T[:, None, :], waveforms.dtype), (cfg.hop_length,), "VALID",
                                     dimension_numbers=("NCH", "OIH", "NCH"), precision=_HIGHEST)
    y = jnp.swapaxes(y, 1, 2)  # [batch, frames, 2k]
    k = mel.shape[0]
    mag = jnp.sqrt(jnp.square(y[..., :k]) + jnp.square(y[..., k:]))
    return mag.reshape(lead + mag.shape[1:]), mel


def _log_mel(waveforms: jax.Array, cfg: FrontendConfig, formulation: str = "fft") -> jax.Array:
    magnitudes = _magnitudes_dft if formulation == "dft" else _magnitudes_fft
    spectrum, mel = magnitudes(waveforms, cfg)
    return jnp.log(jnp.matmul(spectrum, jnp.asarray(mel, waveforms.dtype), precision=_HIGHEST) + cfg.log_offset)


FORMULATIONS = ("fft", "dft")
PRECISIONS = ("float32", "float64")
DEFAULT_PRECISION = "float32"


def resolve_formulation(formulation: str = "auto") -> str:
    if formulation == "auto":
        return "fft"
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be 'auto', 'fft' or 'dft', got {formulation!r}")
    return formulation


def resolve_precision(precision: str | None = None) -> str:
    """The frontend precision for embedding and training alike: float32 unless float64 is asked for."""
    if precision in (None, "auto"):
        return DEFAULT_PRECISION
    if precision not in PRECISIONS:
        raise ValueError(f"frontend precision must be 'float32' or 'float64', got {precision!r}")
    return precision


def examples(waveforms: jax.Array, cfg: FrontendConfig = DEFAULT, dtype=jnp.float32,
             formulation: str = "fft") -> jax.Array:
    """Traceable body of `waveforms_to_examples` (for use inside a caller's jit): [batch, samples] ->
    [batch, n, 96, 64] float32. Computes in `dtype` (float64 needs jax.enable_x64 around the trace)."""
    waveforms = jnp.asarray(waveforms).astype(dtype)
    n_ex = num_examples(waveforms.shape[-1], cfg)
    if n_ex == 0:
        raise frontend.TooShortError(
            f"waveforms of {waveforms.shape[-1]} samples are shorter than one example "
            f"({cfg.example_samples} samples); pad them first")
    # Only the samples the examples cover (the rest would be framed and thrown away); with pad_last, zeros
    # after the end for the last partial example.
    need = frontend.samples_for_examples(n_ex, cfg)
    if need > waveforms.shape[-1]:
        waveforms = jnp.pad(waveforms, [(0, 0)] * (waveforms.ndim - 1) + [(0, need - waveforms.shape[-1])])
    mel = _log_mel(waveforms[..., :need], cfg, formulation)
    idx = np.arange(cfg.example_frames)[None, :] + cfg.example_hop_frames * np.arange(n_ex)[:, None]
    return mel[..., idx, :].astype(jnp.float32)


_examples_jit = jax.jit(examples, static_argnames=("cfg", "dtype", "formulation"))


def waveforms_to_examples(waveforms: jax.Array, cfg: FrontendConfig = DEFAULT, precision: str | None = None,
                          formulation: str = "auto") -> jax.Array:
    """[batch, samples] float32 at 16 kHz (>= one example, 0.975 s) -> [batch, n, 96, 64] float32 log-mel,
    computed in `precision` (`resolve_precision`)."""
    precision = resolve_precision(precision)
    with jax.enable_x64(precision == "float64"):
        return _examples_jit(waveforms, cfg, jnp.dtype(precision), resolve_formulation(formulation))
