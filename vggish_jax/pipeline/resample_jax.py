"""Resampling on the device: the same polyphase filter as `audio.resample`, as one strided convolution.

`audio.polyphase_matrix(up, down)` writes resample_poly as frames X[g] = x[g*D + r_min:][:R] times a fixed
matrix M [R, U]; here the frames are never materialised: a 1-d convolution with stride D and U output
channels (kernel M^T) computes X @ M directly. Used by the benchmark to decide where resampling runs.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vggish_jax import audio


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
    up, down = audio._ratio(sr_in, sr_out)
    if audio._matrix_size(up, down) > audio._MAX_MATRIX:
        raise ValueError(f"{sr_in} -> {sr_out} Hz needs a polyphase matrix too large for the device; "
                         f"resample on the host (audio.resample)")
    return _resample(jnp.asarray(x), up, down, jnp.dtype(dtype))


def host_resample_batch(x: np.ndarray, sr_in: int, sr_out: int = audio.TARGET_SR) -> np.ndarray:
    """The host reference for a batch: audio.resample per row."""
    return np.stack([audio.resample(row, sr_in, sr_out) for row in np.asarray(x, np.float32)])
