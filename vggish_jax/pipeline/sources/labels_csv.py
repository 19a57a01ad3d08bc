"""A CSV of labelled audio files as a source: columns `path`, `label`, and optionally `split` and `group`.

Paths are relative to the CSV's folder (or absolute). Classes are the distinct labels, sorted; splits come
from the `split` column (train, validation, test first, then others sorted) or are one split 'all'. The
`group` column (e.g. artist) is kept per split in `groups` so grouped folds can keep a group together.
"""
from __future__ import annotations

import csv
import hashlib
import os
from typing import Iterator

from vggish_jax import skips
from vggish_jax.pipeline.sources import Clip, file_key

ORDER = ("train", "validation", "test")


class LabelsCsv:
    payload = "audio"
    multilabel = False
    spec = None

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        try:
            with open(self.path, newline="") as f:
                text = f.read()
        except OSError as e:
            raise FileNotFoundError(f"{path}: cannot read the labels CSV ({e.strerror}); check the path") from None
        rows = list(csv.DictReader(text.splitlines()))
        columns = set(rows[0]) if rows else set()
        if not {"path", "label"} <= columns:
            raise ValueError(f"{path}: a labels CSV needs a header with columns path,label (and optionally split, "
                             f"group); found {sorted(columns) or 'no rows'}")
        base = os.path.dirname(self.path)
        self.label_names = sorted({r["label"] for r in rows})
        names = {r.get("split") or "all" for r in rows}
        self._rows: dict[str, list[tuple[str, int]]] = {
            s: [] for s in [s for s in ORDER if s in names] + sorted(names - set(ORDER))}
        self.groups: dict[str, list[str]] = {s: [] for s in self._rows}
        for r in rows:
            s = r.get("split") or "all"
            self._rows[s].append((os.path.join(base, r["path"]), self.label_names.index(r["label"])))
            self.groups[s].append(r.get("group") or "")
        self._sha = hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        counts = {n: sum(label == i for rows in self._rows.values() for _, label in rows)
                  for i, n in enumerate(self.label_names)}
        return (f"{self.path}: {sum(map(len, self._rows.values()))} files in {len(self.label_names)} classes "
                f"({', '.join(f'{n} {c}' for n, c in counts.items())}); splits "
                f"{', '.join(f'{s} {len(r)}' for s, r in self._rows.items())}")

    def identity(self) -> dict:
        return {"source": "csv", "csv_sha256": self._sha}  # its rows number the clips

    def splits(self) -> dict[str, int]:
        return {s: len(r) for s, r in self._rows.items()}

    def skipped(self) -> list[skips.Skip]:
        return []

    def clips(self, split: str, indices: range) -> Iterator[Clip]:
        for i in indices:
            path, label = self._rows[split][i]
            yield Clip(i, file_key(path), label, path=path)
