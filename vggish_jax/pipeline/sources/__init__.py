"""Sources of clips for the embedding core: one small module per source, each implementing `Source`.

A source lists its splits and yields each split's clips in one deterministic order (so clip i always lands
in the same shard), with the payload the core embeds: an audio file to decode ('audio'), a 16 kHz waveform
('waveform'), stored log-mel examples ('mel') or embeddings already made ('embedding': no model runs).
"""
from __future__ import annotations

import collections
import dataclasses
import os
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
    data: np.ndarray | None = None  # 'waveform' (16 kHz int16/float32), 'mel' [n, 96, 64], 'embedding' [n, 128]


class Source(Protocol):
    payload: str
    label_names: list[str]
    multilabel: bool
    spec: EmbeddingSpec | None  # payload 'embedding' only: how the stored embeddings were made

    def identity(self) -> dict: ...  # JSON: what must match on resume besides the EmbeddingSpec
    def splits(self) -> dict[str, int]: ...  # split -> number of clips, deterministic
    def clips(self, split: str, indices: range) -> Iterator[Clip]: ...  # in order; data loaded lazily
    def skipped(self) -> list[skips.Skip]: ...  # known before embedding (missing files, bad records)


class Listed:
    """A source of audio files listed when it opens: `rows` {split: [(path, label)]}, in clip order."""
    payload = "audio"
    multilabel = False
    spec = None
    label_names: list[str] = []

    def __init__(self, rows: dict[str, list[tuple[str, int | str]]], skipped=(), named: bool = False):
        """`named`: the labels are class names, numbered in sorted order (`label_names`)."""
        if named:
            self.label_names = sorted({n for r in rows.values() for _, n in r})
            index = {n: i for i, n in enumerate(self.label_names)}
            rows = {s: [(p, index[n]) for p, n in r] for s, r in rows.items()}
        self.rows, self._skipped = rows, list(skipped)

    def splits(self) -> dict[str, int]:
        return {s: len(r) for s, r in self.rows.items()}

    def skipped(self) -> list[skips.Skip]:
        return list(self._skipped)

    def clips(self, split: str, indices: range) -> Iterator[Clip]:
        for i in indices:
            path, label = self.rows[split][i]
            yield Clip(i, file_key(path), label, path=path)


class Described(Listed):
    """A Listed source that `extract` describes: `summary()` and its cautions."""
    cautions: list[str] = []

    def label_counts(self) -> str:
        """'blues 100, jazz 98': the clips of each class over all splits."""
        counts = collections.Counter(label for rows in self.rows.values() for _, label in rows)
        return ", ".join(f"{n} {counts[i]}" for i, n in enumerate(self.label_names))

    def describe(self) -> str:
        """One line (`summary`), then a `warning:` line per caution."""
        return "\n".join([self.summary()] + [f"warning: {c}" for c in self.cautions])


def file_key(path: str) -> str:
    """A file's clip key: its resolved absolute path (`cd a && x.wav` and `cd b && x.wav` are two files)."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def file_stamp(path: str) -> str:
    """size:mtime_ns of a file ('' if it cannot be read): a changed file gets a new stamp and is re-embedded."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}"
