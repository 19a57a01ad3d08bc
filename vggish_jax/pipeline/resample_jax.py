"""Resampling on the device: the same polyphase filter as `audio.resample`, as one strided convolution.

`audio.polyphase_matrix` writes resample_poly as frames X[g] = x[g*D + r_min:][:R] times M [R, U]; a conv with
stride D and kernel M^T computes X @ M without the frames. Inputs are zero-padded to length buckets (8 per
octave: few compiled shapes); the kept outputs cannot change, as the resampler reads zeros past the end anyway.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vggish_jax import audio
from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import host


@functools.partial(jax.jit, static_argnames=("up", "down", "dtype"))
def _resample(x: jax.Array, up: int, down: int, dtype=jnp.float32) -> jax.Array:
    mat, d, r_min = audio.polyphase_matrix(up, down)
    taps, u = mat.shape
    n_in = x.shape[-1]
    n_out = -(-n_in * up // down)
    groups = -(-n_out // u)
    right = (groups - 1) * d + taps - (n_in - r_min)
    xp = jnp.pad(x.astype(dtype), [(0, 0)] * (x.ndim - 1) + [(-r_min, max(0, right))])
    xp = xp[..., : (groups - 1) * d + taps].reshape((-1, 1, (groups - 1) * d + taps))
    kernel = jnp.asarray(mat.T[:, None, :], dtype)  # [U, 1, R] (OIW)
    y = jax.lax.conv_general_dilated(xp, kernel, (d,), "VALID", precision=jax.lax.Precision.HIGHEST)
    y = jnp.swapaxes(y, 1, 2).reshape(x.shape[:-1] + (groups * u,))  # [.., G, U] -> outputs in order
    return y[..., :n_out]


def resample(x, sr_in: int, sr_out: int = audio.TARGET_SR, dtype=jnp.float32) -> jax.Array:
    """[..., samples] at sr_in -> [..., samples'] at sr_out, equal to `audio.resample` up to float rounding."""
    if sr_in == sr_out:
        return jnp.asarray(x, dtype)
    up, down = audio.ratio(sr_in, sr_out)
    if audio.matrix_size(up, down) > audio.MAX_MATRIX:
        raise ValueError(f"{sr_in} -> {sr_out} Hz needs a polyphase matrix too large for the device; "
                         f"resample on the host (audio.resample)")
    return _resample(jnp.asarray(x), up, down, jnp.dtype(dtype))


def padded_length(n: int, per_octave: int = 8, minimum: int = 1 << 14) -> int:
    """The length bucket of an n-sample input: n rounded up to a multiple of 2^k / per_octave within its
    octave (at most 1 / per_octave wasted), at least `minimum`."""
    if n <= minimum:
        return minimum
    step = max(1, 1 << ((n - 1).bit_length() - per_octave.bit_length()))
    return -(-n // step) * step


def resample_padded(x: np.ndarray, sr_in: int, sr_out: int = audio.TARGET_SR) -> jax.Array:
    """A mono waveform zero-padded to its bucket and resampled on the device (async); its first
    `audio.out_len(len(x), up, down)` samples are `audio.resample(x, sr_in)` up to float rounding."""
    x = np.asarray(x, np.float32)
    padded = np.zeros(padded_length(x.shape[0]), np.float32)
    padded[: x.shape[0]] = x
    return resample(padded, sr_in, sr_out)


def _start(value: host.Native):
    """Dispatch one Native waveform's resampling; returns a callable giving the 16 kHz result (or its error)."""
    up, down = audio.ratio(value.sample_rate, audio.TARGET_SR)
    n_out = audio.out_len(value.wave.shape[0], up, down)
    if audio.matrix_size(up, down) > audio.MAX_MATRIX:  # an odd rate: the host's exact fallback
        y = audio.resample(value.wave, value.sample_rate)
        return lambda: _fit(y, value)
    y = resample_padded(value.wave, value.sample_rate)
    return lambda: _fit(np.asarray(y[:n_out]), value)


def _fit(y: np.ndarray, value: host.Native):
    try:
        return frontend.fit_to_examples(y, pad=value.pad, name=value.path)
    except frontend.TooShortError as e:
        return e  # that file's result, as the host path returns it


def to_16k(items):
    """(key, value) pairs with each `host.Native` value resampled to 16 kHz on the device (or its TooShortError),
    one file dispatched ahead of the one yielded."""
    pending = None
    for key, value in items:
        started = (key, _start(value)) if isinstance(value, host.Native) else (key, lambda v=value: v)
        if pending is not None:
            yield pending[0], pending[1]()
        pending = started
    if pending is not None:
        yield pending[0], pending[1]()
