"""A miniature FMA on disk, in the real layout, for tests of the builder, extraction and classifiers.

    info = make_mini_fma(tmp_path, per_genre_per_split=1, seconds=1.2)
    info.manual_dir            # holds fma_metadata/{tracks.csv,genres.csv} and fma_small/000/000002.mp3 ...
    info.expected_ids(split)   # track ids a correct builder keeps, ascending
    info.bad                   # {track_id: 'corrupt' | 'short' | 'known_bad'}: must land in the skip report

tracks.csv uses the real 3-row header (copied from tests/fixtures/fma_tracks_head.csv) and FMA's split and
subset values; it also lists medium/large-only tracks (no audio) that the `small` config must ignore.
Clips are 44.1 kHz stereo mp3s whose content depends on the genre (a harmonic tone, a noise band and an
amplitude-modulation rate per genre, jittered per clip), so a classifier on their embeddings can learn.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import shutil

import numpy as np
import soundfile as sf

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
GENRES = ("Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock")
GENRE_IDS = {"Electronic": 15, "Experimental": 38, "Folk": 17, "Hip-Hop": 21, "Instrumental": 1235,
             "International": 2, "Pop": 10, "Rock": 12, "Jazz": 4, "Blues": 3}
SPLITS = (("train", "training"), ("validation", "validation"), ("test", "test"))
KNOWN_BAD_ID = 98565  # on the FMA maintainers' list of broken fma_small clips


@dataclasses.dataclass
class MiniFma:
    manual_dir: str
    tracks_csv: str
    audio_root: str
    genres: tuple[str, ...]
    tracks: list[dict]  # {track_id, genre, split, path, kind: 'ok' | 'corrupt' | 'short' | 'known_bad'}
    sample_rate: int

    @property
    def bad(self) -> dict[int, str]:
        return {t["track_id"]: t["kind"] for t in self.tracks if t["kind"] != "ok"}

    def expected_ids(self, split: str) -> list[int]:
        return sorted(t["track_id"] for t in self.tracks if t["split"] == split and t["kind"] == "ok")

    def label_of(self, track_id: int) -> int:
        return self.genres.index(next(t["genre"] for t in self.tracks if t["track_id"] == track_id))

    def path_of(self, track_id: int) -> str:
        return next(t["path"] for t in self.tracks if t["track_id"] == track_id)


def genre_clip(genre_index: int, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """[samples, 2] float32: a clip whose spectrum and rhythm identify the genre, with per-clip jitter."""
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 110.0 * 2.0 ** (genre_index / 2.0) * rng.uniform(0.97, 1.03)
    tilt = 0.3 + 0.1 * genre_index
    tone = sum(tilt ** k * np.sin(2 * np.pi * (k + 1) * f0 * t + rng.uniform(0, 2 * np.pi)) for k in range(4))
    centre = 600.0 * 1.35 ** genre_index
    spec = np.fft.rfft(rng.standard_normal(t.size))
    freqs = np.fft.rfftfreq(t.size, 1 / sr)
    noise = np.fft.irfft(spec * np.exp(-0.5 * ((freqs - centre) / (0.15 * centre)) ** 2), t.size)
    noise /= np.abs(noise).max() + 1e-9
    am = 0.6 + 0.4 * np.sin(2 * np.pi * (1.0 + genre_index) * t)
    x = am * (0.25 * tone / 2.0 + rng.uniform(0.1, 0.3) * noise) + 0.003 * rng.standard_normal(t.size)
    x = np.clip(x, -1, 1)
    return np.stack([x, 0.8 * x], axis=1).astype(np.float32)


def make_mini_fma(root, per_genre_per_split=1, seconds: float = 1.2, *, corrupt: bool = True, short: bool = True,
                  known_bad: bool = True, sample_rate: int = 44100, seed: int = 0,
                  genres: tuple[str, ...] = GENRES) -> MiniFma:
    """Write a mini fma_small under `root` (its manual dir). per_genre_per_split: int or (train, val, test).

    `genres` limits which of the 8 genres get clips (fewer clips = faster tests); labels stay indices into
    all 8 (`info.genres`, the builder's label names).
    """
    root = os.fspath(root)
    counts = (per_genre_per_split,) * 3 if isinstance(per_genre_per_split, int) else tuple(per_genre_per_split)
    rng = np.random.default_rng(seed)
    meta_dir = os.path.join(root, "fma_metadata")
    audio_root = os.path.join(root, "fma_small")
    os.makedirs(meta_dir, exist_ok=True)
    tracks: list[dict] = []
    tid = 2
    for (split, _), n in zip(SPLITS, counts):
        for genre in genres:
            for _ in range(n):
                tracks.append({"track_id": tid, "genre": genre, "split": split, "kind": "ok", "subset": "small"})
                tid += 1 + int(rng.integers(0, 400))  # spread ids over several 000/ folders
    extra = []
    if corrupt:
        extra.append(("corrupt", genres[-1], "train"))
    if short:
        extra.append(("short", genres[0], "validation"))
    for kind, genre, split in extra:
        tid += 7
        tracks.append({"track_id": tid, "genre": genre, "split": split, "kind": kind, "subset": "small"})
    if known_bad:
        tracks.append({"track_id": KNOWN_BAD_ID, "genre": genres[0], "split": "train", "kind": "known_bad",
                       "subset": "small"})
    for t in tracks:
        t["path"] = _audio_path(audio_root, t["track_id"])
        os.makedirs(os.path.dirname(t["path"]), exist_ok=True)
        if t["kind"] == "ok":
            x = genre_clip(GENRES.index(t["genre"]), seconds, sample_rate, rng)
        elif t["kind"] == "short":
            x = genre_clip(GENRES.index(t["genre"]), 0.4, sample_rate, rng)
        elif t["kind"] == "known_bad":
            x = genre_clip(GENRES.index(t["genre"]), 0.3, sample_rate, rng)
        else:
            with open(t["path"], "wb") as f:
                f.write(b"ID3" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
            continue
        sf.write(t["path"], x, sample_rate, format="MP3")
    # Rows of the bigger subsets (no audio): the small config must ignore them.
    distractors = [{"track_id": tid + 11, "genre": "Jazz", "split": "train", "subset": "medium"},
                   {"track_id": tid + 12, "genre": "Blues", "split": "test", "subset": "large"},
                   {"track_id": tid + 13, "genre": "", "split": "validation", "subset": "large"}]
    tracks_csv = os.path.join(meta_dir, "tracks.csv")
    write_tracks_csv(tracks_csv, tracks + distractors, seconds)
    shutil.copy(os.path.join(FIXTURES, "fma_genres.csv"), os.path.join(meta_dir, "genres.csv"))
    return MiniFma(root, tracks_csv, audio_root, GENRES, tracks, sample_rate)


def real_header() -> list[list[str]]:
    with open(os.path.join(FIXTURES, "fma_tracks_head.csv"), newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        return [next(reader) for _ in range(3)]


def write_tracks_csv(path: str, tracks: list[dict], seconds: float) -> None:
    """tracks.csv in FMA's format: the real 3-row header, one row per track sorted by id."""
    header = real_header()
    cols = list(zip(header[0], header[1]))
    split_name = dict(SPLITS)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerows(header)
        for t in sorted(tracks, key=lambda t: t["track_id"]):
            row = [""] * len(cols)
            row[0] = str(t["track_id"])
            gid = GENRE_IDS.get(t["genre"])
            values = {("set", "split"): split_name[t["split"]], ("set", "subset"): t["subset"],
                      ("track", "genre_top"): t["genre"], ("track", "genres"): f"[{gid}]" if gid else "[]",
                      ("track", "genres_all"): f"[{gid}]" if gid else "[]", ("track", "duration"): str(round(seconds)),
                      ("track", "title"): f"Track {t['track_id']}, \"mini\"", ("artist", "name"): "Mini FMA",
                      ("track", "bit_rate"): "128000", ("album", "tags"): "[]"}
            for col, v in values.items():
                row[cols.index(col)] = v
            w.writerow(row)


def _audio_path(audio_root: str, track_id: int) -> str:
    tid = f"{track_id:06d}"
    return os.path.join(audio_root, tid[:3], tid + ".mp3")
