"""The VGGish log-mel frontend in JAX: jit-compiled, batched, runs on any backend.

Same maths as `frontend.py` (the oracle) and shares its constants. Input is a batch of equal-length 16 kHz
waveforms [batch, samples]. Unequal lengths: right-pad with zeros to a common length and use
`num_examples(length)` per clip as the mask. Framing is causal (no centring), so every example that fits
inside a clip's true length is computed from that clip's samples only and is identical to the unpadded
result; examples past it are padding and must be dropped.

Precision: a float32 FFT has absolute error ~1e-7 of the frame's peak magnitude, which the log turns into
errors up to ~3e-4 in quiet mel bands next to loud tones. `precision="float64"` computes framing, FFT and
mel in float64 (under `jax.enable_x64`) and matches the oracle to ~1e-6; "auto" (default) uses float64
except on TPU, which has no float64 FFT. The output is float32 either way.
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


def _log_mel(waveforms: jax.Array, cfg: FrontendConfig) -> jax.Array:
    window, mel = (jnp.asarray(c, waveforms.dtype) for c in _constants(cfg))
    n = frontend.num_frames(waveforms.shape[-1], cfg)
    idx = np.arange(cfg.window_length)[None, :] + cfg.hop_length * np.arange(n)[:, None]
    frames = waveforms[..., idx] * window
    spectrum = jnp.abs(jnp.fft.rfft(frames, n=cfg.fft_length, axis=-1))
    return jnp.log(jnp.matmul(spectrum, mel, precision=jax.lax.Precision.HIGHEST) + cfg.log_offset)


def resolve_precision(precision: str = "auto") -> str:
    if precision == "auto":
        return "float32" if jax.default_backend() == "tpu" else "float64"
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'float64', got {precision!r}")
    return precision


def _with_precision(fn):
    """Run a jitted float32-in/float32-out function with its internals in the chosen precision."""
    @functools.wraps(fn)
    def wrapper(waveforms, cfg: FrontendConfig = DEFAULT, precision: str = "auto"):
        precision = resolve_precision(precision)
        with jax.enable_x64(precision == "float64"):
            return fn(waveforms, cfg, jnp.dtype(precision))
    return wrapper


@_with_precision
@functools.partial(jax.jit, static_argnames=("cfg", "dtype"))
def log_mel(waveforms: jax.Array, cfg: FrontendConfig = DEFAULT, dtype=jnp.float32) -> jax.Array:
    """[..., samples] float32 at 16 kHz -> [..., frames, 64] log-mel (float32)."""
    return _log_mel(jnp.asarray(waveforms).astype(dtype), cfg).astype(jnp.float32)


@_with_precision
@functools.partial(jax.jit, static_argnames=("cfg", "dtype"))
def waveforms_to_examples(waveforms: jax.Array, cfg: FrontendConfig = DEFAULT, dtype=jnp.float32) -> jax.Array:
    """[batch, samples] float32 at 16 kHz -> [batch, n, 96, 64] float32 log-mel examples.

    Needs samples >= one example (0.975 s); see the module docstring for unequal lengths and precision.
    """
    waveforms = jnp.asarray(waveforms).astype(dtype)
    n_ex = num_examples(waveforms.shape[-1], cfg)
    if n_ex == 0:
        raise frontend.TooShortError(
            f"waveforms of {waveforms.shape[-1]} samples are shorter than one example "
            f"({cfg.example_samples} samples); pad them first")
    # Only the samples the examples cover; the rest would be framed and thrown away.
    used = (n_ex - 1) * cfg.example_hop_samples + cfg.example_samples
    mel = _log_mel(waveforms[..., :used], cfg)
    idx = np.arange(cfg.example_frames)[None, :] + cfg.example_hop_frames * np.arange(n_ex)[:, None]
    return mel[..., idx, :].astype(jnp.float32)


def pad_batch(waveforms: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 16 kHz waveforms to one length. Returns ([batch, length] float32, valid examples per clip)."""
    length = length or max(w.shape[0] for w in waveforms)
    out = np.zeros((len(waveforms), length), np.float32)
    for i, w in enumerate(waveforms):
        out[i, : min(length, w.shape[0])] = w[:length]
    valid = np.array([num_examples(min(length, w.shape[0])) for w in waveforms], np.int32)
    return out, valid
