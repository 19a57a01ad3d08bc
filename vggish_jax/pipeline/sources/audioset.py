"""AudioSet v1's released embeddings as a Source (payload 'embedding': no model runs). Keys are
'<video_id>:<start_s>'; the spec is RELEASE_SPEC, never mixed with embeddings of converted weights.
"""
from __future__ import annotations

import functools
import os
from typing import Iterator

from vggish_jax.datasets import audioset
from vggish_jax.pipeline.sources import Clip


class AudioSetSource:
    payload = "embedding"
    spec = audioset.RELEASE_SPEC

    def __init__(self, manual_dir: str, task: str = "music_genre", classes=None, validation_fraction: float = 0.15):
        self.manual_dir = os.path.abspath(manual_dir)
        self.task_name = task
        self.task = audioset.Task.named(task, classes, validation_fraction)
        self.multilabel = self.task.multilabel

    @functools.cached_property
    def _data(self) -> audioset.Dataset:
        return audioset.load(self.manual_dir, self.task)

    @property
    def label_names(self) -> list[str]:
        return self._data.label_names

    def identity(self) -> dict:
        # The release's content is fixed: where it is unpacked is not part of the identity (a moved folder resumes).
        return {"source": "audioset_v1_release", "task": self.task_name,
                "classes": list(self.task.classes) if self.task.classes else None,
                "validation_fraction": self.task.validation_fraction}

    def splits(self) -> dict[str, int]:
        return {s: len(segs) for s, (segs, _) in self._data.splits.items()}

    def clips(self, split: str, indices: range) -> Iterator[Clip]:
        segs, labels = self._data.splits[split]
        for i in indices:
            yield Clip(index=i, key=segs[i].key, label=labels[i] if self.multilabel else int(labels[i]),
                       data=segs[i].embedding)

    @property
    def groups(self) -> dict[str, list[str]]:
        """Per split, the video id of each clip in clip order (folds keep a video on one side)."""
        return {split: [s.video_id for s in segs] for split, (segs, _) in self._data.splits.items()}

    def extra_train(self):
        """(clips [n, 128] uint8, soft targets [n, C], video ids): the single-label task's extra training clips
        (datasets.audioset.label_segments); empty for multi-label."""
        segs, soft = self._data.extra_train
        return [s.embedding for s in segs], soft, [s.video_id for s in segs]

    def skipped(self) -> list:
        return list(self._data.skipped)
