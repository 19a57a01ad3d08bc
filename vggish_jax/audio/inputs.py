"""Which files are audio: command inputs (files and folders) expanded to the audio files they stand for."""
from __future__ import annotations

import os

from vggish_jax import skips
from vggish_jax.audio.errors import AudioError, UnreadableError

# The one list of file endings taken as audio when a folder is scanned (embed, extract, fad, Beam).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".m4a")


def expand_inputs(paths) -> tuple[list[str], list[str], list[skips.Skip]]:
    """Files and folders -> (audio files, notes, unreadable Skips). Files given are kept whatever their name; a
    folder stands for its audio files (`scan_folder`), and one with none raises AudioError (a wrong path)."""
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
