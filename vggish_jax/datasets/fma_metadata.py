"""FMA metadata (fma_metadata/tracks.csv, genres.csv): which tracks belong to a subset, their genre and split.

tracks.csv has a 3-row header (column group, column, then 'track_id'); quoted fields span lines.
"""
from __future__ import annotations

import csv
import dataclasses
import os

SUBSETS = ("small", "medium", "large")  # each contains the previous ones
# tracks.csv 'set.split' value -> TFDS split name.
SPLITS = {"training": "train", "validation": "validation", "test": "test"}
SPLIT_ORDER = ("train", "validation", "test")

# The 8 balanced genres of fma_small and the 16 top-level genres (genres.csv rows with parent 0) that label
# fma_medium/large, sorted: the class index of a genre is its position here.
SMALL_GENRES = ("Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock")
TOP_GENRES = ("Blues", "Classical", "Country", "Easy Listening", "Electronic", "Experimental", "Folk", "Hip-Hop",
              "Instrumental", "International", "Jazz", "Old-Time / Historic", "Pop", "Rock", "Soul-RnB", "Spoken")

# fma_small clips with no or too little audio (listed by the FMA maintainers; the paper kept 7,994 of 8,000).
# The same clips are part of fma_medium and fma_large, so every subset skips them.
KNOWN_BAD = (98565, 98567, 98569, 99134, 108925, 133297)
# Tracks per split of each subset before any removal.
EXPECTED_COUNTS = {"small": {"train": 6400, "validation": 800, "test": 800}}

_COLUMNS = {"genre_top": ("track", "genre_top"), "split": ("set", "split"), "subset": ("set", "subset")}


@dataclasses.dataclass(frozen=True)
class Track:
    track_id: int
    genre_top: str  # '' when FMA gives none (only in fma_large)
    split: str  # 'train' | 'validation' | 'test'
    subset: str  # the smallest subset holding the track: 'small' | 'medium' | 'large'


class MetadataError(ValueError):
    """tracks.csv / genres.csv is not in the FMA format. The message names the file."""


def genre_names(subset: str) -> tuple[str, ...]:
    check_subset(subset)
    return SMALL_GENRES if subset == "small" else TOP_GENRES


def check_subset(subset: str) -> None:
    if subset not in SUBSETS:
        raise ValueError(f"unknown FMA subset {subset!r}; choose one of {', '.join(SUBSETS)}")


def read_tracks(path: str | os.PathLike) -> list[Track]:
    """Every row of tracks.csv as a Track, in file order. A truncated last row is dropped; any other malformed
    row raises MetadataError naming the file and line."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file; it comes from fma_metadata.zip (fma_metadata/tracks.csv)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = [next(reader) for _ in range(3)]
        except StopIteration:
            raise MetadataError(f"{path}: fewer than 3 header rows; not an FMA tracks.csv") from None
        if not header[2] or header[2][0] != "track_id":
            raise MetadataError(f"{path}: third header row must start with 'track_id'; not an FMA tracks.csv "
                                f"(expected the 3-row header of fma_metadata/tracks.csv)")
        pairs = list(zip(header[0], header[1]))
        missing = [c for c in _COLUMNS.values() if c not in pairs]
        if missing:
            raise MetadataError(f"{path}: no column {missing[0]}; not an FMA tracks.csv")
        index = {key: pairs.index(col) for key, col in _COLUMNS.items()}
        ncols = len(header[0])
        tracks, bad = [], None
        for row in reader:
            if bad is not None:  # only the very last row may be malformed
                raise MetadataError(f"{path}: line {bad}: expected {ncols} fields; the file is corrupt")
            if len(row) != ncols or not row[0].isdigit():
                bad = reader.line_num
                continue
            split, subset = row[index["split"]], row[index["subset"]]
            for what, value, known in (("split", split, SPLITS), ("subset", subset, SUBSETS)):
                if value not in known:
                    raise MetadataError(f"{path}: line {reader.line_num}: unknown {what} {value!r}")
            tracks.append(Track(int(row[0]), row[index["genre_top"]], SPLITS[split], subset))
    return tracks


def select(tracks: list[Track], subset: str) -> dict[str, list[Track]]:
    """Tracks of `subset` (including the smaller subsets it contains) with a top genre, per split, sorted by id."""
    check_subset(subset)
    allowed = SUBSETS[: SUBSETS.index(subset) + 1]
    out: dict[str, list[Track]] = {s: [] for s in SPLIT_ORDER}
    for t in sorted(tracks, key=lambda t: t.track_id):
        if t.subset in allowed and t.genre_top:
            out[t.split].append(t)
    return out


def audio_path(audio_root: str | os.PathLike, track_id: int) -> str:
    """fma_<subset>/000/000002.mp3: the id zero-padded to 6 digits, in a folder named by its first 3."""
    tid = f"{int(track_id):06d}"
    return os.path.join(os.fspath(audio_root), tid[:3], tid + ".mp3")
