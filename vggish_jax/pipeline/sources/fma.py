"""FMA as a source: a TFDS build (stored log-mels, or the int16 16 kHz audio of the `*_waveform` configs), or,
with `from_audio`, the mp3s themselves (decoded by the runner). Labels are the top-level genres.

Clip.index is the FMA track id (not the position), so the store's track_ids name tracks as before:
`classify.compare` finds a clip's TFDS record by it.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from vggish_jax import skips
from vggish_jax.pipeline.sources import Clip, Listed


def is_fma(dataset: str) -> bool:
    from vggish_jax.datasets import fma

    return dataset.startswith("fma/") or dataset in {c.name for c in fma.Fma.BUILDER_CONFIGS}


def _skip(path: str, reason: str) -> skips.Skip:
    kind = ("too_short" if "shorter than one" in reason or "too short" in reason
            else "invalid" if "is not one of the" in reason else "undecodable")
    return skips.Skip(kind, path, reason)


class FmaTfds:
    """A built FMA TFDS dataset (built first if missing, with Beam when `beam_runner` is given)."""
    multilabel = False
    spec = None

    def __init__(self, dataset: str, *, data_dir: str, manual_dir: str | None = None, workers: int | None = None,
                 download: bool = False, beam_runner=None, beam_options=None):
        from vggish_jax.datasets import fma

        b = fma.prepare(dataset, data_dir=data_dir, manual_dir=manual_dir, workers=workers, download=download,
                        beam_runner=beam_runner, beam_options=beam_options)
        self.dataset, self.data_dir = dataset, os.path.abspath(data_dir)
        self.label_names = list(fma.label_names(b))
        self.payload = "waveform" if "waveform" in b.info.features else "mel"
        self._sizes = {s: len(ds) for s, ds in fma.data_sources(b).items()}
        self._skipped = [_skip(r["path"], r["reason"]) for r in fma.skip_report(b)]
        self._sources = None

    def __getstate__(self):  # Beam pickles the source; the open data sources stay behind
        return {**self.__dict__, "_sources": None}

    def identity(self) -> dict:
        return {"source": "tfds", "dataset": self.dataset}

    def splits(self) -> dict[str, int]:
        return dict(self._sizes)

    def skipped(self) -> list[skips.Skip]:
        return list(self._skipped)

    def clips(self, split: str, indices: range) -> Iterator[Clip]:
        from vggish_jax.datasets import fma

        if self._sources is None:
            self._sources = fma.data_sources(fma.builder(self.dataset, data_dir=self.data_dir))
        ds = self._sources[split]
        for j in indices:
            r = ds[j]
            tid = int(r["track_id"])
            data = (np.asarray(r["waveform"], np.int16) if self.payload == "waveform"
                    else np.asarray(r["mel"], np.float32))
            yield Clip(tid, f"fma:{tid}", int(r["label"]), data=data)


class FmaAudio(Listed):
    """The FMA mp3s, listed by tracks.csv (no TFDS build): the runner decodes them. Rows: (track_id, label, path)."""

    def __init__(self, dataset: str, *, data_dir: str, manual_dir: str | None = None, download: bool = False):
        from vggish_jax.datasets import fma, fma_metadata as meta

        subset = fma.config_named(dataset, also=" or an audio folder").subset
        tracks_csv, audio_root = fma.find_sources(manual_dir, subset, work_dir=os.path.join(data_dir, "downloads"),
                                                  download=download)
        self.dataset = dataset
        self.label_names = list(meta.genre_names(subset))
        rows, skipped = {}, []
        for split, tracks in meta.select(meta.read_tracks(tracks_csv), subset).items():
            rows[split], bad = fma.select_clips(tracks, self.label_names, audio_root)
            skipped += [_skip(p, r) for _, p, r in bad]
        super().__init__(rows, skipped)

    def identity(self) -> dict:
        return {"source": "audio", "dataset": self.dataset}

    def clips(self, split: str, indices: range) -> Iterator[Clip]:
        for j in indices:
            tid, label, path = self.rows[split][j]
            yield Clip(tid, f"fma:{tid}", label, path=path)
