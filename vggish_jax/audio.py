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
import stat
import sys
import tempfile
import threading
from typing import Iterator

import numpy as np
import soundfile as sf
from scipy import signal

from vggish_jax import skips

TARGET_SR = 16000


class AudioError(ValueError):
    """A file could not be turned into usable audio. The message (one line) names the file and the fix."""
    kind = "undecodable"  # the skips.Skip kind a job records for it

    def __init__(self, message: str):
        super().__init__(skips.one_line(message))

    def skip(self, path: str) -> skips.Skip:
        return skips.Skip(self.kind, os.fspath(path), str(self))


class UnreadableError(AudioError):
    """Not a readable regular file: permission denied, a broken link, a FIFO or device, an unreadable folder."""
    kind = "unreadable"


class TruncatedError(AudioError):
    """Fewer frames decode than the file's header declares (a cut download or copy)."""
    kind = "truncated"


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
    _check_readable_file(path)
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


def _check_readable_file(path: str) -> None:
    """The true reason a path cannot be read as a file, before libsndfile gives its own vaguer one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise UnreadableError(f"{path}: broken symbolic link (points to {os.readlink(path)}, which does not "
                                  f"exist); fix or remove the link") from None
        raise AudioError(f"{path}: no such file; check the path") from None
    except PermissionError:
        raise UnreadableError(f"{path}: permission denied (a folder on its path cannot be searched); fix the "
                              f"permissions (chmod a+rx on the folders) or run as a user who can read it") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: is a folder, not an audio file; pass the folder itself to a command "
                         f"(it takes the audio files inside) or give the files")
    if not stat.S_ISREG(st.st_mode):
        what = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise UnreadableError(f"{path}: is {what}, not a regular file; copy the audio to a regular file and pass that")
    try:
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError:
        raise UnreadableError(f"{path}: permission denied (no read permission); fix it (chmod a+r) or run as a "
                              f"user who can read it") from None
    if st.st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes); re-download or drop it")


# The one list of file endings taken as audio when a folder is scanned (embed, extract, fad, Beam).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".m4a")


def expand_inputs(paths) -> tuple[list[str], list[str], list[skips.Skip]]:
    """Files and folders -> (audio files, notes, unreadable entries). A folder stands for its audio files,
    recursively, sorted (`scan_folder`).

    Files given directly are kept whatever their name (a bad one is reported when it is read); a folder
    with no audio file raises AudioError, since that is a wrong path rather than a bad file. Subfolders that
    cannot be read come back as Skips (kind 'unreadable'): a run that has any is not complete.
    """
    files, notes, skipped = [], [], []
    for p in map(os.fspath, paths):
        if not os.path.isdir(p):
            files.append(p)
            continue
        found, bad = scan_folder(p)
        if not found and not bad:
            raise AudioError(f"{p}: folder holds no audio files ({'/'.join(e[1:] for e in AUDIO_EXTENSIONS)}); "
                             f"check the path")
        files.extend(found)
        skipped.extend(bad)
        unread = f"; {len(bad)} subfolders unreadable" if bad else ""
        notes.append(f"{p}: {len(found)} audio files (searched recursively, in sorted order{unread})")
    return files, notes, skipped


def scan_folder(folder: str | os.PathLike) -> tuple[list[str], list[skips.Skip]]:
    """(audio files under `folder`, recursively, sorted by path; Skips for the folders that cannot be listed).

    The one folder scan (embed, predict, fad). Hidden names (".*", e.g. macOS "._song.mp3" resource forks)
    are not audio. A folder that cannot be read raises UnreadableError when it is `folder` itself.
    """
    folder = os.fspath(folder)
    bad: list[skips.Skip] = []

    def unreadable(e: OSError) -> None:
        where = e.filename or folder
        if os.path.abspath(where) == os.path.abspath(folder):
            raise UnreadableError(f"{folder}: cannot list this folder ({e.strerror}); fix its permissions "
                                  f"(chmod a+rx) or run as a user who can read it")
        bad.append(skips.Skip("unreadable", where, f"{where}: cannot list this folder ({e.strerror}), so its "
                                                  f"audio files were not used; fix its permissions (chmod a+rx) "
                                                  f"and rerun"))

    found = []
    for root, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in names
                  if n.lower().endswith(AUDIO_EXTENSIONS) and not n.startswith(".")]
    return sorted(found), bad


# Below this peak level a file is treated as silent: genre scores of near-silence are noise.
SILENCE_PEAK_DBFS = -60.0


class SilentAudioError(AudioError):
    """The file decodes, but is silent or nearly so."""
    kind = "silent"


def require_audible(path: str | os.PathLike, peak_dbfs: float = SILENCE_PEAK_DBFS, block_seconds: float = 10.0) -> None:
    """Raise SilentAudioError if no sample of the file reaches `peak_dbfs`. Stops at the first loud block."""
    path = os.fspath(path)
    threshold = 10.0 ** (peak_dbfs / 20.0)
    peak = 0.0
    with _open(path) as f:
        step = max(1, int(block_seconds * f.samplerate))
        while True:
            x = _read(f, path, step)
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


# mpg123 (inside libsndfile) writes these straight to file descriptor 2 when it meets damaged data.
_DECODER_CHATTER = (b"Note: ", b"Warning: ", b"[src/libmpg123/", b"[libmpg123/")
_FD2 = {"lock": threading.Lock(), "depth": 0, "saved": None, "tmp": None}


@contextlib.contextmanager
def _without_decoder_notes():
    """Drop the lines mpg123 writes to fd 2 while a damaged or non-mp3 file is opened or decoded ("Note:
    Illegal Audio-MPEG-Header ...", "[src/libmpg123/parse.c...] error: Giving up resync"): our one-line error
    or skip says what is wrong.

    fd 2 is redirected to a temporary file while any thread is inside (a count, so parallel decoders are not
    serialised); the last one out restores it and passes on everything else written meanwhile.
    """
    st = _FD2
    with st["lock"]:
        if st["depth"] == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):
                saved = None
            if saved is not None:
                tmp = tempfile.TemporaryFile()
                os.dup2(tmp.fileno(), 2)
                st["saved"], st["tmp"] = saved, tmp
        st["depth"] += 1
    try:
        yield
    finally:
        with st["lock"]:
            st["depth"] -= 1
            if st["depth"] == 0 and st["saved"] is not None:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                saved, tmp = st["saved"], st["tmp"]
                st["saved"] = st["tmp"] = None
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                kept = [ln for ln in tmp.read().splitlines(keepends=True) if not ln.startswith(_DECODER_CHATTER)]
                tmp.close()
                if kept:
                    os.write(2, b"".join(kept))


def _read(f: sf.SoundFile, path: str, frames: int = -1, at: int | None = None) -> np.ndarray:
    """Decode up to `frames` frames [samples, channels] float32 (fewer at the end of what decodes)."""
    try:
        # Only mpg123 writes to fd 2 while decoding; other formats need no redirect.
        with _without_decoder_notes() if f.format == "MP3" else contextlib.nullcontext():
            return f.read(frames, dtype="float32", always_2d=True)
    except Exception as e:
        where = "part-way" if at is None else f"at sample {at}"
        raise AudioError(f"{path}: decoding failed {where} ({type(e).__name__}: {e}); the file is corrupt: "
                         f"re-encode or drop it") from e


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


_CAUTION_SINKS: list[list[skips.Caution]] = []
_SINKS_LOCK = threading.Lock()


def report_caution(c: skips.Caution) -> None:
    """Print one `warning: ...` line to stderr and hand the record to every active `collect_cautions`."""
    print(c.line(), file=sys.stderr, flush=True)
    with _SINKS_LOCK:
        for sink in _CAUTION_SINKS:
            sink.append(c)


def forward_cautions(cautions: list[skips.Caution]) -> None:
    """Hand Cautions reported (and already printed) in another process to this process's collectors."""
    with _SINKS_LOCK:
        for sink in _CAUTION_SINKS:
            sink.extend(cautions)


def with_cautions(fn, item):
    """(fn(item), the Cautions it reported): what a decode worker process returns, so the parent can
    `forward_cautions` them into its report (a process's collectors cannot see another's)."""
    with collect_cautions() as cautions:
        value = fn(item)
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


def load(path: str | os.PathLike, target_sr: int | None = None, *,
         keep_truncated: bool = False) -> tuple[np.ndarray, int]:
    """Decode a whole file to float32 mono; resample to `target_sr` if given. Returns (waveform, rate).

    A truncated file raises TruncatedError unless `keep_truncated`; over-range float audio is reported
    (`report_caution`) and used as given.
    """
    path = os.fspath(path)
    with _open(path) as f:
        sr, declared = f.samplerate, f.frames
        x = _read(f, path)
    if x.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples; re-download or drop it")
    check_finite(x, path)
    _check_length(path, declared, x.shape[0], sr, keep_truncated)
    _check_peak(path, float(np.abs(x).max()))
    x = to_mono(x)
    if target_sr is not None and target_sr != sr:
        return resample(x, sr, target_sr), target_sr
    return x, sr


def stream(path: str | os.PathLike, target_sr: int = TARGET_SR, block_seconds: float = 60.0, *,
           keep_truncated: bool = False) -> Iterator[np.ndarray]:
    """Yield consecutive float32 mono blocks at `target_sr` whose concatenation equals `load(path, target_sr)`.

    Only about one block of decoded audio is held at a time. Blocks are cut at input positions that map to
    whole output samples, and each is resampled with enough context on both sides that the polyphase
    filter sees the same neighbourhood as a whole-file resample; the results agree to float rounding.
    A truncated file raises TruncatedError when its end is reached (after the blocks that decoded), unless
    `keep_truncated`; over-range audio is reported once, with its peak, when the file is done.
    """
    path = os.fspath(path)
    peak = 0.0
    with _open(path) as f:
        sr = f.samplerate
        up, down = _ratio(sr, target_sr)
        # Context on each side: the filter's reach, rounded up to whole multiples of `down`.
        context = down * (-(-_filter_half_len_in(up, down) // down) + 2)
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
                new = _read(f, path, want, at=buf_lo + buf.shape[0])
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
            keep_from = max(0, start - context)  # the next block's `lo`
            buf, buf_lo = buf[keep_from - buf_lo:], keep_from
    _check_peak(path, peak)


def _out_len(n_in: int, up: int, down: int) -> int:
    return -(-n_in * up // down)  # resample_poly's output length: ceil(n * up / down)
