"""FMA tracks.csv / genres.csv parsing, on real rows (tests/fixtures, cut from the official metadata)."""
from __future__ import annotations

import csv
import os

import pytest

from mini_fma import FIXTURES, make_mini_fma, real_header
from vggish_jax.datasets import fma_metadata as meta

TRACKS = os.path.join(FIXTURES, "fma_tracks_head.csv")
GENRES = os.path.join(FIXTURES, "fma_genres.csv")


def test_reads_real_rows_with_three_row_header():
    tracks = {t.track_id: t for t in meta.read_tracks(TRACKS)}
    assert len(tracks) == 41
    # Values read off the raw file by eye (columns set.split, set.subset, track.genre_top).
    assert tracks[2] == meta.Track(2, "Hip-Hop", "train", "small")
    assert tracks[3] == meta.Track(3, "Hip-Hop", "train", "medium")
    assert tracks[20] == meta.Track(20, "", "train", "large")
    assert tracks[148] == meta.Track(148, "Experimental", "validation", "small")
    assert tracks[704] == meta.Track(704, "International", "test", "small")
    assert tracks[735] == meta.Track(735, "Soul-RnB", "test", "medium")


def test_subsets_nest_and_drop_tracks_without_top_genre():
    tracks = meta.read_tracks(TRACKS)
    small = meta.select(tracks, "small")
    assert {s: [t.track_id for t in ts] for s, ts in small.items()} == {
        "train": [2, 5, 10, 140], "validation": [148, 459, 602, 690], "test": [182, 704, 705, 706]}
    medium = meta.select(tracks, "medium")
    ids = {t.track_id for ts in medium.values() for t in ts}
    assert {t.track_id for ts in small.values() for t in ts} < ids
    assert {3, 134, 136, 139, 181, 458, 564, 583, 584, 585, 734, 735} <= ids and 135 not in ids
    large = meta.select(tracks, "large")
    ids = {t.track_id for ts in large.values() for t in ts}
    assert len(ids) == 41 - 5 and not ids & {20, 26, 30, 46, 185}  # the five rows without genre_top
    with pytest.raises(ValueError, match="unknown FMA subset"):
        meta.select(tracks, "huge")


def test_label_sets_match_genres_csv():
    with open(GENRES, newline="", encoding="utf-8") as f:
        top_level = tuple(sorted(r["title"] for r in csv.DictReader(f) if int(r["parent"]) == 0))  # root genres
    assert top_level == meta.TOP_GENRES
    assert set(meta.SMALL_GENRES) < set(meta.TOP_GENRES)
    assert meta.genre_names("small") == meta.SMALL_GENRES and meta.genre_names("medium") == meta.TOP_GENRES


def test_audio_path_layout():
    assert meta.audio_path("/d/fma_small", 2) == os.path.join("/d/fma_small", "000", "000002.mp3")
    assert meta.audio_path("/d/fma_small", 133297) == os.path.join("/d/fma_small", "133", "133297.mp3")


def test_truncated_last_row_is_dropped_but_a_broken_middle_row_is_an_error(tmp_path):
    text = open(TRACKS, encoding="utf-8").read()
    cut = tmp_path / "cut.csv"
    cut.write_text(text + '999,0,2008-11-26 01:44:45,"<p>cut in the mid', encoding="utf-8")
    assert meta.read_tracks(cut) == meta.read_tracks(TRACKS)
    lines = text.splitlines(keepends=True)
    broken = tmp_path / "broken.csv"
    broken.write_text("".join(lines[:3]) + "7,training,small\n" + "".join(lines[3:]), encoding="utf-8")
    with pytest.raises(meta.MetadataError, match="broken.csv: line 4"):
        meta.read_tracks(broken)


def test_wrong_files_give_one_line_errors(tmp_path):
    with pytest.raises(meta.MetadataError, match="fma_genres.csv.*not an FMA tracks.csv"):
        meta.read_tracks(GENRES)
    with pytest.raises(FileNotFoundError, match="fma_metadata.zip"):
        meta.read_tracks(tmp_path / "tracks.csv")


def test_mini_fma_writes_the_real_format(tmp_path):
    info = make_mini_fma(tmp_path, per_genre_per_split=(2, 1, 1), seconds=1.0)
    with open(info.tracks_csv, encoding="utf-8") as f:
        head = [next(f) for _ in range(3)]
    with open(TRACKS, encoding="utf-8") as f:
        assert head == [next(f) for _ in range(3)]
    assert real_header()[2][0] == "track_id"
    small = meta.select(meta.read_tracks(info.tracks_csv), "small")
    want = {s: sorted(t["track_id"] for t in info.tracks if t["split"] == s) for s in meta.SPLIT_ORDER}
    assert {s: [t.track_id for t in ts] for s, ts in small.items()} == want
    assert len(want["train"]) == 16 + 2 and len(want["validation"]) == 8 + 1 and len(want["test"]) == 8
    for t in info.tracks:
        assert os.path.exists(t["path"]) and t["path"] == meta.audio_path(info.audio_root, t["track_id"])
    assert set(info.bad.values()) == {"corrupt", "short", "known_bad"}
    assert info.bad[98565] == "known_bad" and 98565 in meta.KNOWN_BAD
