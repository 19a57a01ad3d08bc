"""Decoding a file to float32 mono: whole (`load`) or in blocks (`stream`), resampled to a target rate, with
the checks on what decodes. Cautions (a file used as given, e.g. truncated and kept, over-range) are printed once
as `warning: ...` and handed to every active `collect_cautions` list; workers send theirs back (`with_cautions`).
The one rule for "this clip is silent": its peak sample is below SILENCE_PEAK_DBFS (-60 dBFS); `predict`
refuses such a clip, `fad` leaves it out of the statistics and reports it.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from typing import Iterator

import numpy as np

from vggish_jax import skips
from vggish_jax.audio import files, resampling
from vggish_jax.audio.files import AudioError, SilentAudioError, TruncatedError
from vggish_jax.audio.resampling import TARGET_SR

_CAUTION_SINKS: list[list[skips.Caution]] = []
_SINKS_LOCK = threading.Lock()
_LOCAL = threading.local()  # .deferred: in a decode worker process, whose parent prints its Cautions


def report_caution(c: skips.Caution) -> None:
    """Print one `warning: ...` line to stderr and hand the record to every active `collect_cautions`."""
    if not getattr(_LOCAL, "deferred", False):
        print(c.line(), file=sys.stderr, flush=True)
    with _SINKS_LOCK:
        for sink in _CAUTION_SINKS:
            sink.append(c)


def forward_cautions(cautions: list[skips.Caution]) -> None:
    """Report here the Cautions of a decode worker process (where the command's stderr is, in order with its
    other lines, and this process's collectors)."""
    for c in cautions:
        report_caution(c)


def with_cautions(fn, item):
    """(fn(item), the Cautions it reported): what a decode worker process returns, so the parent can
    `forward_cautions` them (prints them, and lists them in its report: a process's collectors cannot see
    another's). Not printed here unless fn raises."""
    _LOCAL.deferred = True
    try:
        with collect_cautions() as cautions:
            value = fn(item)
    except BaseException:
        for c in cautions:  # the parent gets the exception only: say them here
            print(c.line(), file=sys.stderr, flush=True)
        raise
    finally:
        _LOCAL.deferred = False
    return value, list(cautions)


@contextlib.contextmanager
def collect_cautions() -> Iterator[list[skips.Caution]]:
    """A list that receives every Caution reported in this process (any thread) while the block runs, so a
    command can list them in its report. Decode worker processes send theirs back (`with_cautions`)."""
    sink: list[skips.Caution] = []
    with _SINKS_LOCK:
        _CAUTION_SINKS.append(sink)
    try:
        yield sink
    finally:
        with _SINKS_LOCK:
            _CAUTION_SINKS.remove(sink)


def to_mono(x: np.ndarray) -> np.ndarray:
    """[samples] or [samples, channels] -> [samples] float32 (channels averaged)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32)
    elif x.ndim != 1:
        raise AudioError(f"expected audio of shape [samples] or [samples, channels], got {x.shape}")
    return x


def check_finite(x: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise AudioError(f"{name}: {bad} NaN/inf samples; the audio is corrupt, re-encode or drop the file")


# A decoded length this far below the header's is a truncated file, not mp3 rounding or a fuzzy estimate.
TRUNCATION_SECONDS, TRUNCATION_FRACTION = 1.0, 0.02


def _check_length(path: str, declared: int, decoded: int, sr: int, keep_truncated: bool) -> None:
    missing = declared - decoded
    if missing <= max(TRUNCATION_SECONDS * sr, TRUNCATION_FRACTION * declared):
        return
    what = (f"{path}: truncated: {decoded} of the {declared} frames its header declares decode "
            f"({decoded / sr:.1f} s of {declared / sr:.1f} s)")
    if not keep_truncated:
        raise TruncatedError(f"{what}; re-download it, or to use the part that decodes, re-encode that part (e.g. "
                             f"ffmpeg -i IN OUT.wav)")
    report_caution(skips.Caution("truncated_kept", path, f"{what}; only that part was used (keep_truncated)"))


# Float audio whose peak exceeds this (+6 dBFS) is almost surely mis-scaled (e.g. int16 values stored as
# float); decoders and resamplers overshoot full scale only slightly.
OVER_RANGE_PEAK = 2.0


def _check_peak(path: str, peak: float) -> None:
    if peak > OVER_RANGE_PEAK:
        report_caution(skips.Caution(
            "over_range", path, f"{path}: samples peak at {peak:.4g} ({20 * math.log10(peak):+.0f} dBFS), far "
                                f"above full scale 1.0; used as given, so results are unlike those of the same "
                                f"audio at a normal level: rescale the file to [-1, 1] if that was not intended"))


def load(path: str | os.PathLike, target_sr: int | None = None, *,
         keep_truncated: bool = False) -> tuple[np.ndarray, int]:
    """(float32 mono waveform, rate), resampled to `target_sr` if given. A truncated file raises TruncatedError
    unless `keep_truncated`; over-range float audio is used as given with a caution."""
    path = os.fspath(path)
    with files.open_audio(path) as f:
        sr, declared = f.samplerate, f.frames
        x = files.read_frames(f, path)
    if x.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples; re-download or drop it")
    check_finite(x, path)
    _check_length(path, declared, x.shape[0], sr, keep_truncated)
    _check_peak(path, float(np.abs(x).max()))
    x = to_mono(x)
    if target_sr is not None and target_sr != sr:
        return resampling.resample(x, sr, target_sr), target_sr
    return x, sr


def stream(path: str | os.PathLike, target_sr: int = TARGET_SR, block_seconds: float = 60.0, *,
           keep_truncated: bool = False, mono_peak: list[float] | None = None) -> Iterator[np.ndarray]:
    """Float32 mono blocks at `target_sr` whose concatenation equals `load(path, target_sr)` to float rounding,
    holding about one block: each is resampled with the filter's context on both sides. Truncation raises
    at the end (after the blocks that decoded) unless `keep_truncated`. `mono_peak` ([0.0]): its item becomes
    the largest |sample| of the mono audio at the file's own rate, read so far (what `is_silent` judges)."""
    path = os.fspath(path)
    peak = 0.0
    with files.open_audio(path) as f:
        sr = f.samplerate
        up, down = resampling.ratio(sr, target_sr)
        # Context on each side: the filter's reach, rounded up to whole multiples of `down`.
        context = down * (-(-resampling.filter_half_len_in(up, down) // down) + 2)
        step = max(down, int(block_seconds * sr) // down * down)
        total = declared = f.frames
        # Read front to back, never seeking (mp3 seeks are approximate, and wrong in a truncated file): `buf`
        # holds input frames [buf_lo, buf_lo + len(buf)), enough for the current block and its context.
        buf, buf_lo, start = np.zeros((0, f.channels), np.float32), 0, 0
        while start < total:
            lo = max(0, start - context)
            hi = min(total, start + step + context)
            want = hi - (buf_lo + buf.shape[0])
            if want > 0:
                new = files.read_frames(f, path, want, at=buf_lo + buf.shape[0])
                check_finite(new, path)
                if new.shape[0]:
                    peak = max(peak, float(np.abs(new).max()))
                buf = np.concatenate([buf, new]) if buf.shape[0] else new
                if new.shape[0] < want:  # the data ends before the header says: this is where
                    total = buf_lo + buf.shape[0]
                    _check_length(path, declared, total, sr, keep_truncated)
                    if total == 0:
                        raise AudioError(f"{path}: contains no audio samples; re-download or drop it")
                    if start >= total:
                        break
                    hi = total
            x = to_mono(buf[lo - buf_lo: hi - buf_lo])
            if mono_peak is not None and x.size:
                mono_peak[0] = max(mono_peak[0], float(np.abs(x).max()))
            if up == down:
                yield x[start - lo: start - lo + step]
            else:
                y = resampling.resample_by(x, up, down)
                # Output index of `start` within this block; lo and start are multiples of `down`.
                skip = (start - lo) // down * up
                end = min(start + step, total)
                n_out = resampling.out_len(end, up, down) - resampling.out_len(start, up, down)
                yield y[skip: skip + n_out]
            start += step
            keep_from = max(0, start - context)  # the next block's `lo`
            buf, buf_lo = buf[keep_from - buf_lo:], keep_from
    _check_peak(path, peak)


SILENCE_PEAK_DBFS = -60.0


def peak_dbfs(x: np.ndarray) -> float:
    """20 log10 of the largest |sample| (full scale 1.0); -inf for digital silence or no samples."""
    peak = float(np.max(np.abs(x))) if np.size(x) else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def is_silent(x: np.ndarray, peak_limit_dbfs: float = SILENCE_PEAK_DBFS) -> bool:
    """True when no sample of `x` reaches `peak_limit_dbfs`."""
    return peak_dbfs(x) < peak_limit_dbfs


def require_audible(path: str | os.PathLike, peak_limit_dbfs: float = SILENCE_PEAK_DBFS,
                    block_seconds: float = 10.0, *,
                    consequence: str = "no genre can be predicted from it") -> None:
    """Raise SilentAudioError if the file `is_silent`. Stops at the first block that is not."""
    path = os.fspath(path)
    peak = -math.inf
    with files.open_audio(path) as f:
        step = max(1, int(block_seconds * f.samplerate))
        while True:
            x = files.read_frames(f, path, step)
            if x.shape[0] == 0:
                break
            x = to_mono(x)
            check_finite(x, path)
            peak = max(peak, peak_dbfs(x))
            if peak >= peak_limit_dbfs:
                return
    raise silent_error(path, peak, consequence, peak_limit_dbfs)


def silent_error(path: str, peak: float, consequence: str,
                 peak_limit_dbfs: float = SILENCE_PEAK_DBFS) -> SilentAudioError:
    """The one-line error for a file `is_silent` calls silent; `peak` in dBFS."""
    level = "digital silence" if peak == -math.inf else f"peak {peak:.0f} dBFS"
    return SilentAudioError(f"{path}: silent or nearly so ({level}, below {peak_limit_dbfs:.0f} dBFS); "
                            f"{consequence}: check the file, or raise its level if it is just quiet")
