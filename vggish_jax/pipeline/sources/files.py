"""A list of audio files as a source (`vggish-jax embed FILES`): one split named by the caller, no labels,
keyed by resolved absolute path."""
from __future__ import annotations

import os

from vggish_jax.pipeline.sources import Listed


class Files(Listed):
    def __init__(self, paths: list[str], split: str = "files"):
        self.split = split  # decoded as given (made absolute), so a broken link is reported as one
        super().__init__({split: [(os.path.abspath(str(p)), -1) for p in paths]})

    def identity(self) -> dict:
        return {"source": "files"}  # any files may join the store: each clip is found again by its key
