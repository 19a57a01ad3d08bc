"""Where clips come from (the Source protocol of the extraction core). Branch `core` owns this file; this is
the agreed protocol only, so that sources written in parallel import the same names."""
from __future__ import annotations

import dataclasses
from typing import Iterator, Protocol

import numpy as np

from vggish_jax import skips
from vggish_jax.spec import EmbeddingSpec


@dataclasses.dataclass
class Clip:
    index: int  # position in its split (deterministic order): the store's track_ids
    key: str  # a stable name: resolved absolute path, 'fma:<track_id>', '<video_id>:<start_s>'
    label: int | np.ndarray  # class index (-1 unknown) or, multi-label, a [num_classes] uint8 multi-hot
    path: str | None = None  # an audio file the runner decodes (payload 'audio')
    data: np.ndarray | None = None  # payload 'waveform', 'mel' [n,96,64] or 'embedding' [n,128]


class Source(Protocol):
    payload: str  # 'audio' | 'waveform' | 'mel' | 'embedding' (already embedded: no model runs)
    label_names: list[str]
    multilabel: bool
    spec: EmbeddingSpec | None  # payload 'embedding' only: how the stored embeddings were made

    def identity(self) -> dict: ...

    def splits(self) -> dict[str, int]: ...

    def clips(self, split: str, indices: range) -> Iterator[Clip]: ...

    def skipped(self) -> list[skips.Skip]: ...
