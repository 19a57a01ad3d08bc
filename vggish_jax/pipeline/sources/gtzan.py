"""GTZAN's fault-filtered train/validation/test split (Kereliuk, Sturm & Larsen 2015) for a GTZAN folder.

The split lists ship in vggish_jax/assets/gtzan (SOURCE.md), matched on the file stem (.au or .wav). Files
not listed are left out and counted; a listed file that is absent is a `missing` skip.
"""
from __future__ import annotations

import collections
import os
import re

from vggish_jax import skips
from vggish_jax.pipeline.sources import Described

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
SPLIT = "gtzan-filtered"  # the --split name
LISTS = {"train": "train_filtered.txt", "validation": "valid_filtered.txt", "test": "test_filtered.txt"}
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "assets",
                      "gtzan")
_NAME = re.compile(r"([a-z]+)\.\d{5}")


def stem(relpath: str) -> str:
    """'blues/blues.00012' for blues/blues.00012.au (or .wav): how a file is matched against the lists."""
    return os.path.splitext(relpath.replace(os.sep, "/"))[0]


def is_gtzan(files: list[str]) -> bool:
    """True when `files` (paths relative to the folder) have GTZAN's layout and names."""
    parts = [f.split(os.sep) for f in files]
    if not parts or any(len(p) != 2 for p in parts) or {p[0] for p in parts} != set(GENRES):
        return False
    return all((m := _NAME.fullmatch(os.path.splitext(name)[0])) and m.group(1) == genre for genre, name in parts)


class GtzanFiltered(Described):
    """A GTZAN folder (a `Folder` source with GTZAN's layout) split by the fault-filtered lists."""
    label_names = list(GENRES)

    def __init__(self, folder):
        if not getattr(folder, "gtzan", False):
            raise ValueError(f"{folder.folder}: --split {SPLIT} needs GTZAN's layout (the 10 genre folders "
                             f"{', '.join(GENRES)} holding only <genre>.000NN files), which this folder does not "
                             f"have; drop --split (compare --cv K then makes folds)")
        self.folder = folder.folder
        self.cautions = list(getattr(folder, "cautions", []))  # e.g. an empty subfolder beside the 10 genres
        by_stem: dict[str, tuple[str, int]] = {}  # the folder's (path, label): its classes are GENRES
        for f, row in zip(folder.files, folder.rows["all"]):  # sorted: of x.au and x.wav the first is used
            by_stem.setdefault(stem(f), row)
        ext = collections.Counter(os.path.splitext(f)[1] for f in folder.files).most_common(1)[0][0]
        rows, skipped = {}, folder.skipped()
        for split, name in LISTS.items():  # the fault-filtered split, as shipped
            with open(os.path.join(ASSETS, name)) as f:
                stems = [stem(line.strip()) for line in f if line.strip()]
            rows[split] = [by_stem[s] for s in stems if s in by_stem]
            for s in stems:
                if s not in by_stem:
                    path = os.path.join(self.folder, *s.split("/")) + ext
                    skipped.append(skips.Skip(
                        "missing", path, f"{path}: listed in GTZAN's fault-filtered {split} split but not in "
                                         f"{self.folder}; put the file back (GTZAN has all 1000), or extract "
                                         f"without --split and use compare --cv K"))
        super().__init__(rows, skipped)
        self.missing = len(skipped) - len(folder.skipped())
        self.left_out = len(folder.files) - sum(map(len, rows.values()))

    def summary(self) -> str:
        return (f"{self.folder}: GTZAN, split {SPLIT} (Kereliuk, Sturm & Larsen 2015): "
                f"{', '.join(f'{s} {len(r)}' for s, r in self.rows.items())} files; {self.left_out} files not in "
                f"the lists left out; {self.missing} listed files missing (skipped)")

    def identity(self) -> dict:
        return {"source": SPLIT, "files": [os.path.relpath(p, self.folder) for r in self.rows.values() for p, _ in r]}
