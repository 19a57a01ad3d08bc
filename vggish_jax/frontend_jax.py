"""The VGGish log-mel frontend in JAX: jit-compiled, batched, runs on any backend.

Same maths as `frontend.py` (the oracle) and shares its constants. Input is a batch of equal-length 16 kHz
waveforms [batch, samples]. Unequal lengths: right-pad with zeros to a common length and use
`num_examples(length)` per clip as the mask. Framing is causal (no centring), so every example that fits
inside a clip's true length is computed from that clip's samples only and is identical to the unpadded
result; examples past it are padding and must be dropped.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vggish_jax import frontend
from vggish_jax.frontend import DEFAULT, FrontendConfig, num_examples  # noqa: F401  (re-exported)


@functools.lru_cache(maxsize=None)
def _constants(cfg: FrontendConfig):
    return (frontend.periodic_hann(cfg.window_length).astype(np.float32),
            frontend.mel_matrix(cfg).astype(np.float32))


def _log_mel(waveforms: jax.Array, cfg: FrontendConfig) -> jax.Array:
    window, mel = _constants(cfg)
    n = frontend.num_frames(waveforms.shape[-1], cfg)
    idx = np.arange(cfg.window_length)[None, :] + cfg.hop_length * np.arange(n)[:, None]
    frames = waveforms[..., idx] * window
    spectrum = jnp.abs(jnp.fft.rfft(frames, n=cfg.fft_length, axis=-1))
    return jnp.log(jnp.matmul(spectrum, mel, precision=jax.lax.Precision.HIGHEST) + cfg.log_offset)


@functools.partial(jax.jit, static_argnames=("cfg",))
def log_mel(waveforms: jax.Array, cfg: FrontendConfig = DEFAULT) -> jax.Array:
    """[..., samples] float32 at 16 kHz -> [..., frames, 64] log-mel."""
    return _log_mel(jnp.asarray(waveforms, jnp.float32), cfg)


@functools.partial(jax.jit, static_argnames=("cfg",))
def waveforms_to_examples(waveforms: jax.Array, cfg: FrontendConfig = DEFAULT) -> jax.Array:
    """[batch, samples] float32 at 16 kHz -> [batch, n, 96, 64] log-mel examples.

    Needs samples >= one example (0.975 s); see the module docstring for unequal lengths.
    """
    waveforms = jnp.asarray(waveforms, jnp.float32)
    n_ex = num_examples(waveforms.shape[-1], cfg)
    if n_ex == 0:
        raise frontend.TooShortError(
            f"waveforms of {waveforms.shape[-1]} samples are shorter than one example "
            f"({cfg.example_samples} samples); pad them first")
    # Only the samples the examples cover; the rest would be framed and thrown away.
    used = (n_ex - 1) * cfg.example_hop_samples + cfg.example_samples
    mel = _log_mel(waveforms[..., :used], cfg)
    idx = np.arange(cfg.example_frames)[None, :] + cfg.example_hop_frames * np.arange(n_ex)[:, None]
    return mel[..., idx, :]


def pad_batch(waveforms: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 16 kHz waveforms to one length. Returns ([batch, length] float32, valid examples per clip)."""
    length = length or max(w.shape[0] for w in waveforms)
    out = np.zeros((len(waveforms), length), np.float32)
    for i, w in enumerate(waveforms):
        out[i, : min(length, w.shape[0])] = w[:length]
    valid = np.array([num_examples(min(length, w.shape[0])) for w in waveforms], np.int32)
    return out, valid
