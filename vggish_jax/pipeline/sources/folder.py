"""A folder of audio files as a source: every audio file below it, in sorted relative-path order, split 'all'.

Labels come from first-level subfolders when every audio file lies in one (GTZAN's `genres/blues/x.wav`
layout): classes are the subfolder names, sorted. Otherwise every label is -1 (unknown). Unreadable
subfolders and entries are reported as skips, not silently left out. A folder with GTZAN's layout and file
names (`gtzan`) can be split by GTZAN's fault-filtered lists instead (sources.gtzan).
"""
from __future__ import annotations

import os
from typing import Iterator

from vggish_jax import audio, skips
from vggish_jax.audio import AUDIO_EXTENSIONS
from vggish_jax.pipeline.sources import Clip, file_key, gtzan


class Folder:
    payload = "audio"
    multilabel = False
    spec = None

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        if not os.path.isdir(self.folder):
            raise FileNotFoundError(f"{folder}: no such folder; --dataset is an FMA config (fma/small, ...) or a "
                                    f"folder of audio files")
        files, self._skipped = audio.scan_folder(self.folder)  # the one folder scan
        if not files:
            raise FileNotFoundError(f"{folder}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)}); point "
                                    f"--dataset at a folder of audio files or name an FMA config such as fma/small")
        self.files = [os.path.relpath(p, self.folder) for p in files]
        parts = [f.split(os.sep) for f in self.files]
        if all(len(p) > 1 for p in parts):  # one class per first-level subfolder
            self.label_names = sorted({p[0] for p in parts})
            self.labels = [self.label_names.index(p[0]) for p in parts]
        else:
            self.label_names, self.labels = [], [-1] * len(files)
        self.gtzan = gtzan.is_gtzan(self.files)

    def describe(self) -> str:
        """One line: the classes found and their file counts (or why there are none)."""
        if not self.label_names:
            return (f"{self.folder}: {len(self.files)} audio files, no class labels (labels come from first-level "
                    f"subfolders when every file lies in one)")
        counts = ", ".join(f"{n} {self.labels.count(i)}" for i, n in enumerate(self.label_names))
        hint = (f"; GTZAN's layout: --split {gtzan.SPLIT} gives its fault-filtered train/validation/test split"
                if self.gtzan else "")
        return f"{self.folder}: {len(self.files)} audio files in {len(self.label_names)} classes ({counts}){hint}"

    def identity(self) -> dict:
        # The sorted list numbers the clips: a file added or removed would shift the shards of a resume.
        return {"source": "folder", "files": list(self.files)}

    def splits(self) -> dict[str, int]:
        return {"all": len(self.files)}

    def skipped(self) -> list[skips.Skip]:
        return list(self._skipped)

    def clips(self, split: str, indices: range) -> Iterator[Clip]:
        for i in indices:
            path = os.path.join(self.folder, self.files[i])
            yield Clip(i, file_key(path), self.labels[i], path=path)
