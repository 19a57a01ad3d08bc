"""Audio files on disk: the errors reading raises (one line naming the file, the reason and a fix; each maps to
a Skip kind), opening and reading a file (the true reason a path cannot be read, no decoder chatter on stderr),
and which files are audio (command inputs, files and folders, expanded to the audio files they stand for)."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
import threading

import numpy as np
import soundfile as sf

from vggish_jax import skips


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


class NameTooLongError(UnreadableError):
    """A path the file system refuses as too long (ENAMETOOLONG): no file by that name can be opened."""
    kind = "name_too_long"


class TruncatedError(AudioError):
    """Fewer frames decode than the file's header declares (a cut download or copy)."""
    kind = "truncated"


class SilentAudioError(AudioError):
    """The file decodes, but is silent or nearly so (`decode.is_silent`)."""
    kind = "silent"


def open_audio(path: str | os.PathLike) -> sf.SoundFile:
    """An open SoundFile with at least one frame, or AudioError / UnreadableError saying why not."""
    path = os.fspath(path)
    _check_readable_file(path)
    try:
        with without_decoder_notes():
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
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        longest = max(len(os.fsencode(part)) for part in path.split(os.sep))
        raise NameTooLongError(f"{path}: name too long for the file system ({longest} bytes in one name, "
                               f"{len(os.fsencode(path))} in the path; the usual limits are 255 and 4096), so no "
                               f"such file can be opened; shorten the name") from None
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


def read_frames(f: sf.SoundFile, path: str, frames: int = -1, at: int | None = None) -> np.ndarray:
    """Decode up to `frames` frames [samples, channels] float32 (fewer at the end of what decodes)."""
    try:
        # Only mpg123 writes to fd 2 while decoding; other formats need no redirect.
        with without_decoder_notes() if f.format == "MP3" else contextlib.nullcontext():
            return f.read(frames, dtype="float32", always_2d=True)
    except Exception as e:
        where = "part-way" if at is None else f"at sample {at}"
        raise AudioError(f"{path}: decoding failed {where} ({type(e).__name__}: {e}); the file is corrupt: "
                         f"re-encode or drop it") from e


# mpg123 (inside libsndfile) writes these straight to file descriptor 2 when it meets damaged data.
_DECODER_CHATTER = (b"Note: ", b"Warning: ", b"[src/libmpg123/", b"[libmpg123/")
_FD2 = {"lock": threading.Lock(), "depth": 0, "saved": None, "tmp": None}


@contextlib.contextmanager
def without_decoder_notes():
    """Drop mpg123's notes on fd 2 about a damaged file (our one-line error says it): fd 2 goes to a temporary
    file while any thread is inside; the last one out restores it and passes on everything else."""
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


# The one list of file endings taken as audio when a folder is scanned (embed, extract, fad, Beam).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".m4a")


def expand_inputs(paths) -> tuple[list[str], list[str], list[skips.Skip]]:
    """Files and folders -> (audio files, notes, unreadable Skips). Files given are kept whatever their name; a
    folder stands for its audio files (`scan_folder`), and one with none raises AudioError (a wrong path)."""
    found_files, notes, skipped = [], [], []
    for p in map(os.fspath, paths):
        if not os.path.isdir(p):
            found_files.append(p)
            continue
        found, bad = scan_folder(p)
        if not found and not bad:
            raise AudioError(f"{p}: folder holds no audio files ({'/'.join(e[1:] for e in AUDIO_EXTENSIONS)}); "
                             f"check the path")
        found_files.extend(found)
        skipped.extend(bad)
        unread = f"; {len(bad)} subfolders unreadable" if bad else ""
        notes.append(f"{p}: {len(found)} audio files (searched recursively, in sorted order{unread})")
    return found_files, notes, skipped


def scan_folder(folder: str | os.PathLike) -> tuple[list[str], list[skips.Skip]]:
    """(audio files under `folder`, recursively, sorted; Skips for subfolders that cannot be listed). Hidden
    names (".*", e.g. macOS "._song.mp3") are not audio; an unreadable `folder` raises UnreadableError."""
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
