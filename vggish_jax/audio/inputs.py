"""Which files are audio: command inputs (files and folders) expanded to the audio files they stand for."""
from __future__ import annotations

import os

from vggish_jax import skips
from vggish_jax.audio.errors import AudioError, UnreadableError

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
