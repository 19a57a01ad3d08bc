"""Reading audio: decode (soundfile), downmix, resample, stream in blocks. The one place that reads audio files.

Resampling: scipy's polyphase resampler (`scipy.signal.resample_poly`, computed here as dense matmuls that
give the same numbers ~10x faster: `polyphase_matrix`) driven by a low-pass FIR designed
with the same parameters as resampy's `kaiser_best` filter, which the TF reference uses (resampy 0.4: 50
zero crossings, Kaiser beta 12.9846, roll-off 0.917347). scipy's default filter (10 zero crossings, beta 5) lets through enough
aliasing above 8 kHz to shift quiet mel bands by up to ~7 in log; with this filter the README's measured gap
to resampy is small. `experiments/resample_gap.py` measures it.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import tempfile
import threading
from typing import Iterator

import numpy as np
import soundfile as sf
from scipy import signal

TARGET_SR = 16000


class AudioError(ValueError):
    """A file could not be turned into usable audio. The message names the file and the fix."""


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


def _ratio(sr_in: int, sr_out: int) -> tuple[int, int]:
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    g = math.gcd(int(sr_in), int(sr_out))
    return int(sr_out) // g, int(sr_in) // g


# resampy 0.4's kaiser_best design parameters (facts from its filter table and docs).
ZERO_CROSSINGS, KAISER_BETA, ROLLOFF = 50, 12.9846, 0.91734737


@functools.lru_cache(maxsize=16)
def _lowpass(up: int, down: int) -> np.ndarray:
    """Windowed-sinc FIR at the upsampled rate, cut at ROLLOFF of the lower Nyquist."""
    rate = max(up, down)
    return signal.firwin(2 * ZERO_CROSSINGS * rate + 1, ROLLOFF / rate, window=("kaiser", KAISER_BETA))


def _filter_half_len_in(up: int, down: int) -> int:
    """Input samples the filter reaches on each side of an output sample."""
    return -(-ZERO_CROSSINGS * max(up, down) // up)


_MAX_MATRIX = 1 << 22  # entries of the polyphase matrix (32 MB); every common rate needs under 0.25 M


@functools.lru_cache(maxsize=16)
def polyphase_matrix(up: int, down: int) -> tuple[np.ndarray, int, int]:
    """(M [R, U] float64, D, r_min): resample_poly as one matmul per group of U outputs.

    resample_poly(x, up, down, window=h) computes y[n] = up * sum_k x[k] h[n*down - k*up + half] (half: the
    filter's centre). Output n = g*U + j (U = up*m) reads inputs g*D + r (D = down*m) with the weight
    up*h[j*down - r*up + half], independent of the group g; so with frames X[g, :] = x[g*D + r_min:][:R],
    y = (X @ M).ravel(). m makes U >= 128, so the matmul is wide enough for BLAS (48 -> 16 kHz has up = 1).
    """
    h = _lowpass(up, down) * up
    u, d, r_min, r_max, half = _matrix_shape(up, down)
    r = np.arange(r_min, r_max + 1)[:, None]
    idx = np.arange(u)[None, :] * down - r * up + half
    ok = (idx >= 0) & (idx < h.size)
    return np.where(ok, h[np.clip(idx, 0, h.size - 1)], 0.0), d, r_min


def _matrix_shape(up: int, down: int) -> tuple[int, int, int, int, int]:
    half = ZERO_CROSSINGS * max(up, down)  # _lowpass has 2 * half + 1 taps
    m = -(-128 // up)
    u = up * m
    return u, down * m, -(half // up), ((u - 1) * down + half) // up, half


def _matrix_size(up: int, down: int) -> int:
    u, _, r_min, r_max, _ = _matrix_shape(up, down)
    return (r_max - r_min + 1) * u


def _resample(x: np.ndarray, up: int, down: int, groups_per_matmul: int = 2048) -> np.ndarray:
    """Equal to scipy.signal.resample_poly(x, up, down, window=_lowpass(up, down)) (float64 sums), about 10x
    faster: the polyphase filter as dense BLAS matmuls (polyphase_matrix), in chunks to bound memory."""
    if _matrix_size(up, down) > _MAX_MATRIX:  # odd rates (e.g. 16001 Hz -> 16 kHz)
        return signal.resample_poly(x, up, down, window=_lowpass(up, down)).astype(np.float32)
    mat, d, r_min = polyphase_matrix(up, down)
    taps, u = mat.shape
    n_out = _out_len(x.shape[0], up, down)
    groups = -(-n_out // u)
    padded = np.zeros((groups - 1) * d + taps, np.float64)
    stop = min(x.shape[0], padded.size + r_min)
    padded[-r_min: -r_min + stop] = x[:stop]
    frames = np.lib.stride_tricks.sliding_window_view(padded, taps)[::d]
    out = np.empty((groups, u), np.float32)
    for g in range(0, groups, groups_per_matmul):
        out[g: g + groups_per_matmul] = frames[g: g + groups_per_matmul] @ mat
    return out.reshape(-1)[:n_out]


def resample(x: np.ndarray, sr_in: int, sr_out: int = TARGET_SR) -> np.ndarray:
    """Polyphase resampling of a mono float32 signal with a kaiser_best-like low-pass."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    up, down = _ratio(sr_in, sr_out)
    return _resample(np.asarray(x, dtype=np.float32), up, down)


def _open(path: str | os.PathLike) -> sf.SoundFile:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file; check the path")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: file is empty (0 bytes); re-download or drop it")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a folder, not an audio file; pass the folder itself to a command "
                         f"(it takes the audio files inside) or give the files")
    try:
        with _without_decoder_notes():
            f = sf.SoundFile(path)
    except Exception as e:  # libsndfile raises LibsndfileError/RuntimeError with terse text
        # libsndfile says "File does not exist" for any file it cannot recognise: do not quote that.
        raise AudioError(f"{path}: cannot decode it (no wav/flac/ogg/mp3 audio found); the file is corrupt, "
                         f"truncated or not audio despite its name: re-encode or drop it") from e
    if f.frames == 0:
        f.close()
        raise AudioError(f"{path}: contains no audio samples; re-download or drop it")
    return f


# The one list of file endings taken as audio when a folder is scanned (embed, extract, fad, Beam).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".m4a")


def expand_inputs(paths) -> tuple[list[str], list[str]]:
    """Files and folders -> (audio files, notes). A folder stands for its audio files, recursively, sorted.

    Files given directly are kept whatever their name (a bad one is reported when it is read); a folder
    with no audio file raises AudioError, since that is a wrong path rather than a bad file.
    """
    files, notes = [], []
    for p in map(os.fspath, paths):
        if not os.path.isdir(p):
            files.append(p)
            continue
        found = sorted(os.path.join(root, name) for root, _, names in os.walk(p) for name in names
                       if name.lower().endswith(AUDIO_EXTENSIONS))
        if not found:
            raise AudioError(f"{p}: folder holds no audio files ({'/'.join(e[1:] for e in AUDIO_EXTENSIONS)}); "
                             f"check the path")
        files.extend(found)
        notes.append(f"{p}: {len(found)} audio files (searched recursively, in sorted order)")
    return files, notes


# Below this peak level a file is treated as silent: genre scores of near-silence are noise.
SILENCE_PEAK_DBFS = -60.0


class SilentAudioError(AudioError):
    """The file decodes, but is silent or nearly so."""


def require_audible(path: str | os.PathLike, peak_dbfs: float = SILENCE_PEAK_DBFS, block_seconds: float = 10.0) -> None:
    """Raise SilentAudioError if no sample of the file reaches `peak_dbfs`. Stops at the first loud block."""
    path = os.fspath(path)
    threshold = 10.0 ** (peak_dbfs / 20.0)
    peak = 0.0
    with _open(path) as f:
        step = max(1, int(block_seconds * f.samplerate))
        while True:
            try:
                x = f.read(step, dtype="float32", always_2d=True)
            except Exception as e:
                raise AudioError(f"{path}: decoding failed part-way ({e}); the file is corrupt") from e
            if x.shape[0] == 0:
                break
            x = to_mono(x)
            check_finite(x, path)
            peak = max(peak, float(np.max(np.abs(x))))
            if peak >= threshold:
                return
    level = "digital silence" if peak == 0 else f"peak {20 * math.log10(peak):.0f} dBFS"
    raise SilentAudioError(f"{path}: silent or nearly so ({level}, below {peak_dbfs:.0f} dBFS); no genre can be "
                           f"predicted from it: check the file, or raise its level if it is just quiet")


_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_decoder_notes():
    """Drop the "Note: Illegal Audio-MPEG-Header ... resync" lines mpg123 (inside libsndfile) writes straight to
    file descriptor 2 when it opens a damaged or non-mp3 file: our one-line error says what is wrong.

    Everything else written to stderr meanwhile (by any thread) is passed on afterwards. Only the open is
    wrapped, so decoding in parallel threads is not serialised.
    """
    with _FD2_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                kept = [ln for ln in tmp.read().splitlines(keepends=True) if not ln.startswith(b"Note: ")]
                if kept:
                    os.write(2, b"".join(kept))


def info(path: str | os.PathLike) -> tuple[int, int]:
    """(frames, sample_rate) from the header, without decoding."""
    with _open(path) as f:
        return f.frames, f.samplerate


def load(path: str | os.PathLike, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode a whole file to float32 mono; resample to `target_sr` if given. Returns (waveform, rate)."""
    path = os.fspath(path)
    with _open(path) as f:
        sr = f.samplerate
        try:
            x = f.read(dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(f"{path}: decoding failed part-way ({e}); the file is corrupt") from e
    if x.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples; re-download or drop it")
    x = to_mono(x)
    check_finite(x, path)
    if target_sr is not None and target_sr != sr:
        return resample(x, sr, target_sr), target_sr
    return x, sr


def stream(path: str | os.PathLike, target_sr: int = TARGET_SR, block_seconds: float = 60.0) -> Iterator[np.ndarray]:
    """Yield consecutive float32 mono blocks at `target_sr` whose concatenation equals `load(path, target_sr)`.

    Only about one block of decoded audio is held at a time. Blocks are cut at input positions that map to
    whole output samples, and each is resampled with enough context on both sides that the polyphase
    filter sees the same neighbourhood as a whole-file resample; the results agree to float rounding.
    """
    path = os.fspath(path)
    with _open(path) as f:
        sr = f.samplerate
        up, down = _ratio(sr, target_sr)
        # Context on each side: the filter's reach, rounded up to whole multiples of `down`.
        context = down * (-(-_filter_half_len_in(up, down) // down) + 2)
        step = max(down, int(block_seconds * sr) // down * down)
        total = f.frames
        start = 0
        while start < total:
            lo = max(0, start - context)
            hi = min(total, start + step + context)
            f.seek(lo)
            try:
                x = f.read(hi - lo, dtype="float32", always_2d=True)
            except Exception as e:
                raise AudioError(f"{path}: decoding failed at sample {lo} ({e}); the file is corrupt") from e
            if x.shape[0] == 0:
                if start == 0:
                    raise AudioError(f"{path}: contains no audio samples; re-download or drop it")
                break
            x = to_mono(x)
            check_finite(x, path)
            if up == down:
                yield x[start - lo: start - lo + step]
            else:
                y = _resample(x, up, down)
                # Output index of `start` within this block; lo and start are multiples of `down`.
                skip = (start - lo) // down * up
                end = min(start + step, total)
                n_out = _out_len(end, up, down) - _out_len(start, up, down)
                yield y[skip: skip + n_out]
            start += step


def _out_len(n_in: int, up: int, down: int) -> int:
    return -(-n_in * up // down)  # resample_poly's output length: ceil(n * up / down)
