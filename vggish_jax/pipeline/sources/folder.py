"""A folder of audio files as a source: every audio file below it, in sorted relative-path order, split 'all'.

Labels are the first-level subfolder names (sorted) when every audio file lies in one (GTZAN's
`genres/blues/x.wav`), else -1 (unknown). Unreadable subfolders and entries are reported as skips, a class
subfolder without audio as a caution. `sources.gtzan` splits a GTZAN folder by its fault-filtered lists.
"""
from __future__ import annotations

import os

from vggish_jax import audio
from vggish_jax.audio import AUDIO_EXTENSIONS
from vggish_jax.pipeline.sources import Described, gtzan


class Folder(Described):
    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        if not os.path.isdir(self.folder):
            raise FileNotFoundError(f"{folder}: no such folder; --dataset is an FMA config (fma/small, ...) or a "
                                    f"folder of audio files")
        files, skipped = audio.scan_folder(self.folder)  # the one folder scan
        if not files:
            subs = subfolders(self.folder)
            empty = (f": its class folder{'s' * (len(subs) > 1)} {', '.join(subs)} "
                     f"{'are' if len(subs) > 1 else 'is'} empty" if subs else "")
            raise FileNotFoundError(f"{folder}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)}){empty}; put "
                                    f"audio files in it, or point --dataset at a folder of audio files or name an "
                                    f"FMA config such as fma/small")
        self.files = [os.path.relpath(p, self.folder) for p in files]
        firsts = [f.split(os.sep)[0] if os.sep in f else None for f in self.files]
        labelled = None not in firsts  # one class per first-level subfolder
        super().__init__({"all": [(os.path.join(self.folder, f), c if labelled else -1)
                                  for f, c in zip(self.files, firsts)]}, skipped, named=labelled)
        self.labels = [y for _, y in self.rows["all"]]
        self.cautions = self._empty_classes() if labelled else []
        self.gtzan = gtzan.is_gtzan(self.files)

    def _empty_classes(self) -> list[str]:
        """A line per first-level subfolder that holds no audio file (one that cannot be read is a skip)."""
        unreadable = [os.path.abspath(s.path) for s in self._skipped]
        lines = []
        for name in subfolders(self.folder):
            sub = os.path.join(self.folder, name)
            if name not in self.label_names and not any(u == sub or u.startswith(sub + os.sep) for u in unreadable):
                lines.append(f"{sub}: a class folder with no audio files ({', '.join(AUDIO_EXTENSIONS)}), so "
                             f"{name!r} is not a class; put its audio files in it, or remove the folder")
        return lines

    def summary(self) -> str:
        """The classes found and their file counts, or why there are none."""
        if not self.label_names:
            return (f"{self.folder}: {len(self.files)} audio files, no class labels (labels come from first-level "
                    f"subfolders when every file lies in one)")
        hint = (f"; GTZAN's layout: --split {gtzan.SPLIT} gives its fault-filtered train/validation/test split"
                if self.gtzan else "")
        return (f"{self.folder}: {len(self.files)} audio files in {len(self.label_names)} classes "
                f"({self.label_counts()}){hint}")

    def identity(self) -> dict:
        # The sorted list numbers the clips: a file added or removed would shift the shards of a resume.
        return {"source": "folder", "files": list(self.files)}


def subfolders(folder: str) -> list[str]:
    """The names of `folder`'s first-level subfolders, hidden ones left out, sorted."""
    try:
        return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []
