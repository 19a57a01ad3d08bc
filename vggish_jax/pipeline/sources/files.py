"""A list of audio files as a source (`vggish-jax embed FILES`): one split named by the caller, no labels,
keyed by resolved absolute path."""
from __future__ import annotations

import os
from typing import Iterator

from vggish_jax import skips
from vggish_jax.pipeline.sources import Clip, file_key


class Files:
    payload = "audio"
    multilabel = False
    spec = None
    label_names: list[str] = []

    def __init__(self, paths: list[str], split: str = "files"):
        self.paths, self.split = [str(p) for p in paths], split

    def identity(self) -> dict:
        return {"source": "files"}  # any files may join the store: each clip is found again by its key

    def splits(self) -> dict[str, int]:
        return {self.split: len(self.paths)}

    def skipped(self) -> list[skips.Skip]:
        return []

    def clips(self, split: str, indices: range) -> Iterator[Clip]:
        for i in indices:
            path = os.path.abspath(self.paths[i])  # decoded as given, so a broken link is reported as one
            yield Clip(i, file_key(path), -1, path=path)
