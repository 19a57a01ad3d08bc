"""The one check of an in-memory waveform and its sample rate, for every entry that takes one: `to_16k`.

sample_rate: an integer number of Hz (an int, a NumPy/JAX integer, or a float with no fraction) in
1,000..768,000; bool, text, None and 44100.5 are refused, never coerced or truncated. waveform: see `to_16k`.
Imports no jax, so decode workers and the NumPy oracle can use it.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

from vggish_jax import audio
from vggish_jax.models.vggish import frontend
from vggish_jax.models.vggish.frontend import DEFAULT, FrontendConfig

MIN_RATE, MAX_RATE = 1_000, 768_000  # Hz: below, a kHz value passed as Hz; above, no audio interface records
MAX_CHANNELS = 16


class WaveformError(ValueError):
    """An in-memory waveform or sample rate that cannot be embedded; the message is one line."""
    kind = "invalid"  # the skips.Skip kind, should a job record it

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))


class WaveformTooShort(WaveformError, frontend.TooShortError):
    """Shorter than one VGGish example (0.975 s) without pad=True."""
    kind = "too_short"


def check_rate(sample_rate, name: str = "waveform") -> int:
    """`sample_rate` as an int of Hz, or WaveformError (see the module doc)."""
    try:  # a 0-d integer array (NumPy or JAX) is an int
        if isinstance(sample_rate, (bool, np.bool_)) or np.ndim(sample_rate) != 0:
            raise TypeError
        if not isinstance(sample_rate, numbers.Real):
            sample_rate = operator.index(sample_rate)
    except TypeError:
        raise WaveformError(f"{name}: sample_rate must be a number of Hz such as 16000, got "
                            f"{type(sample_rate).__name__} {sample_rate!r}; pass e.g. int(rate)") from None
    value = float(sample_rate)
    if not np.isfinite(value) or value <= 0:
        raise WaveformError(f"{name}: sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if value < MIN_RATE:
        raise WaveformError(f"{name}: sample_rate {sample_rate!r} Hz is below {MIN_RATE} Hz; did you mean "
                            f"{round(value * 1000)} Hz? (sample rates are in Hz, not kHz)")
    if not value.is_integer():
        raise WaveformError(f"{name}: sample_rate {sample_rate!r} is not a whole number of Hz; pass the "
                            f"recording's true integer rate (e.g. {round(value)})")
    if value > MAX_RATE:
        raise WaveformError(f"{name}: sample_rate {sample_rate!r} Hz is above {MAX_RATE} Hz, no recording's "
                            f"rate; pass the rate in Hz (e.g. 44100)")
    return int(value)


def to_float(x: np.ndarray, name: str = "waveform") -> np.ndarray:
    """float32 samples: floats as given, integers scaled by their type's full range to [-1, 1)."""
    if x.dtype == np.uint8:  # 8-bit WAV convention: unsigned, centred on 128
        return (x.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(x.dtype, np.signedinteger):
        return (x.astype(np.float64) / float(2 ** (8 * x.dtype.itemsize - 1))).astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    raise WaveformError(f"{name}: samples of type {x.dtype} are not audio; pass float (-1..1) or signed/8-bit "
                        f"unsigned integer samples")


def to_mono(x: np.ndarray, name: str = "waveform") -> np.ndarray:
    """[samples], [samples, channels] or [channels, samples] -> [samples] (channels averaged)."""
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        rows, cols = x.shape
        if rows <= MAX_CHANNELS and cols > rows:  # [channels, samples]
            return x.mean(axis=0, dtype=np.float32)
        if cols <= MAX_CHANNELS and rows > cols:  # [samples, channels]
            return x.mean(axis=1, dtype=np.float32)
    raise WaveformError(f"{name}: shape {tuple(x.shape)} is not audio; pass [samples], [samples, channels] or "
                        f"[channels, samples] with at most {MAX_CHANNELS} channels")


def to_16k(waveform, sample_rate, *, pad: bool = False, cfg: FrontendConfig = DEFAULT,
           name: str = "waveform") -> np.ndarray:
    """`waveform` (NumPy or JAX, [samples], [samples, channels] or [channels, samples], at most 16 channels and
    more samples than channels) as mono float32 at cfg's rate (16 kHz): channels averaged, floats as given,
    integers scaled by their full range, finite, not empty, at least one example (0.975 s) long unless pad=True
    (zero-padded to one example); else a WaveformError (one line naming the problem and a fix)."""
    rate = check_rate(sample_rate, name)
    x = to_float(np.asarray(waveform), name)
    if x.size == 0:
        raise WaveformError(f"{name}: holds no samples; pass at least {frontend.example_seconds(cfg):.3f} s "
                            f"of audio")
    x = to_mono(x, name)
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise WaveformError(f"{name}: {bad} NaN/inf samples of {x.size}; the audio is corrupt: replace them "
                            f"(e.g. np.nan_to_num) or drop it")
    if x.shape[0] / rate < frontend.example_seconds(cfg) and not pad:
        raise WaveformTooShort(
            f"{name}: {x.shape[0] / rate:.3f} s of audio is shorter than one VGGish example "
            f"({frontend.example_seconds(cfg):.3f} s); use a longer clip or pass pad=True")
    if rate != cfg.sample_rate:
        x = audio.resample(x, rate, cfg.sample_rate)
    # Resampling may leave a clip of exactly one example a sample short: pad that one sample.
    return frontend.fit_to_examples(x, pad=True, cfg=cfg, name=name)


def waveform_to_examples(waveform, sample_rate, *, pad: bool = False, cfg: FrontendConfig = DEFAULT) -> np.ndarray:
    """A checked waveform (as `to_16k`) -> [n, 96, 64] float32 log-mel examples by the NumPy reference frontend."""
    return frontend.waveform_to_examples(to_16k(waveform, sample_rate, pad=pad, cfg=cfg), cfg.sample_rate, cfg=cfg)
