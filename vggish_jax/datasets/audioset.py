"""AudioSet v1's released embeddings (Google, CC BY 4.0) as genre datasets, without TensorFlow.

The release holds one SequenceExample per 10-s YouTube segment (`{bal_train,eval,unbal_train}/*.tfrecord`):
`video_id`, `start_time_seconds`, `labels` (class_labels_indices.csv) and `audio_embedding`, one uint8 [128]
vector per 0.96 s (VGGish + PCA + uint8; some segments have fewer than 10 frames).
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import difflib
import glob
import hashlib
import json
import os
import struct
import sys

import numpy as np

from vggish_jax import skips
from vggish_jax.spec import EmbeddingSpec

EMBEDDING_BYTES = 128
MUSIC_GENRE = "Music genre"
TASKS = ("music_genre", "music_genre_multilabel")
RELEASE_DIRS = {"balanced_train": "bal_train", "eval": "eval"}
ONTOLOGY = "ontology.json"
CLASS_LABELS = "class_labels_indices.csv"
# How the released vectors were made: not by these weights, so FAD and the heads refuse to mix them with
# embeddings of any converted weights (the model field differs; the weights hash is unknown).
RELEASE_SPEC = EmbeddingSpec.create(model="vggish-audioset-v1-release", weights_sha256=None, final_relu=False,
                                    postprocess="pca_uint8_truncate", dtype="uint8")


class ReleaseError(ValueError):
    """The manual directory does not hold what the release should."""


@dataclasses.dataclass(frozen=True)
class Segment:
    video_id: str
    start_s: float
    end_s: float
    labels: tuple[int, ...]  # AudioSet class indices
    embedding: np.ndarray  # [frames, 128] uint8

    @property
    def key(self) -> str:
        return f"{self.video_id}:{self.start_s:g}"


def _masked_crc(data) -> int:
    import crc32c

    c = crc32c.crc32c(bytes(data))
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecord(path: str) -> tuple[list[bytes], list[skips.Skip]]:
    """(records, skips) of one uncompressed TFRecord file, both masked CRC32C checksums verified (the `tfrecord`
    package skips them). A bad record is skipped; a damaged length header ends the file."""
    with open(path, "rb") as f:
        buf = f.read()
    records, bad, pos, n = [], [], 0, 0
    fix = "re-download this file from the release"
    while pos < len(buf):
        head = buf[pos: pos + 12]
        length = struct.unpack("<Q", head[:8])[0] if len(head) == 12 else 0
        data, crc = buf[pos + 12: pos + 12 + length], buf[pos + 12 + length: pos + 16 + length]
        at, kept = f"{path}: record {n} at byte {pos}", f"({len(records)} records before it kept)"
        if len(head) < 12 or struct.unpack("<I", head[8:])[0] != _masked_crc(head[:8]):
            what = "truncated" if len(head) < 12 else "length checksum mismatch"
            bad.append(skips.Skip("invalid", path, f"{at}: {what}, so the rest of the file cannot be read {kept}; "
                                                   f"{fix}"))
            break
        if len(data) < length or len(crc) < 4:
            bad.append(skips.Skip("truncated", path, f"{at} is cut short {kept}; {fix}"))
            break
        if struct.unpack("<I", crc)[0] != _masked_crc(data):
            bad.append(skips.Skip("invalid", path, f"{at}: data checksum mismatch, record skipped; {fix}"))
        else:
            records.append(data)
        pos += 16 + length
        n += 1
    return records, bad


def parse_segment(raw: bytes) -> Segment:
    """One SequenceExample of the release; ValueError (without the file name) if it is not one."""
    from google.protobuf.message import DecodeError

    # TensorFlow's protos when it is loaded, else tfrecord's copy: both register 'tensorflow.SequenceExample' in
    # protobuf's one pool, so importing the second copy fails.
    if "tensorflow" in sys.modules:
        from tensorflow.core.example import example_pb2
    else:
        from tfrecord import example_pb2
    try:
        ex = example_pb2.SequenceExample.FromString(raw)
    except DecodeError as e:
        raise ValueError(f"not a SequenceExample ({e})") from None
    ctx = ex.context.feature
    missing = [k for k in ("video_id", "start_time_seconds", "end_time_seconds", "labels") if k not in ctx]
    if missing or "audio_embedding" not in ex.feature_lists.feature_list:
        raise ValueError(f"no {', '.join(missing or ['audio_embedding'])}: not an AudioSet embedding record")
    frames = [f.bytes_list.value[0] if f.bytes_list.value else b""
              for f in ex.feature_lists.feature_list["audio_embedding"].feature]
    wrong = [len(b) for b in frames if len(b) != EMBEDDING_BYTES]
    if wrong or not frames:
        raise ValueError(f"audio_embedding frames must be {EMBEDDING_BYTES} bytes; found "
                         f"{'no frames' if not frames else f'{wrong[0]} bytes'}")
    emb = np.frombuffer(b"".join(frames), np.uint8).reshape(len(frames), EMBEDDING_BYTES)
    return Segment(ctx["video_id"].bytes_list.value[0].decode(), ctx["start_time_seconds"].float_list.value[0],
                   ctx["end_time_seconds"].float_list.value[0], tuple(ctx["labels"].int64_list.value), emb)


def read_file(path: str) -> tuple[list[Segment], list[skips.Skip]]:
    """The segments of one release file; corrupt or malformed records become Skips naming the file."""
    records, bad = read_tfrecord(path)
    out = []
    for i, raw in enumerate(records):
        try:
            out.append(parse_segment(raw))
        except ValueError as e:
            bad.append(skips.Skip("invalid", path, f"{path}: record {i}: {e}; record skipped"))
    return out, bad


@dataclasses.dataclass(frozen=True)
class GenreMap:
    names: tuple[str, ...]  # the top-level genres, in the ontology's order
    class_genres: dict  # AudioSet class index -> frozenset of genre indices

    def genres_of(self, labels) -> frozenset:
        return frozenset(g for c in labels for g in self.class_genres.get(c, ()))


def genre_map(ontology_path: str, class_labels_path: str) -> GenreMap:
    """Classes under "Music genre" mapped to the top-level genre(s) (its 25 children) they descend from."""
    with open(ontology_path) as f:
        nodes = {n["id"]: n for n in json.load(f)}
    with open(class_labels_path, newline="") as f:
        index = {r["mid"]: int(r["index"]) for r in csv.DictReader(f)}
    roots = [n for n in nodes.values() if n["name"] == MUSIC_GENRE]
    if len(roots) != 1:
        raise ReleaseError(f"{ontology_path}: no single {MUSIC_GENRE!r} node; is it AudioSet's ontology.json?")
    tops = roots[0]["child_ids"]
    class_genres: dict[int, set] = {}
    for g, top in enumerate(tops):
        stack, seen = [top], set()
        while stack:  # the ontology is a DAG: a node may be reached twice
            mid = stack.pop()
            if mid in seen:
                continue
            seen.add(mid)
            if mid in index:
                class_genres.setdefault(index[mid], set()).add(g)
            stack += nodes[mid]["child_ids"]
    return GenreMap(tuple(nodes[t]["name"] for t in tops), {c: frozenset(s) for c, s in class_genres.items()})


@dataclasses.dataclass(frozen=True)
class Task:
    multilabel: bool = False
    classes: tuple[str, ...] | None = None  # genre names to keep (None: all 25)
    validation_fraction: float = 0.15

    def __post_init__(self):
        # A genre named twice is one class (not two columns of the same labels).
        object.__setattr__(self, "classes", tuple(dict.fromkeys(self.classes)) if self.classes else None)

    @property
    def name(self) -> str:
        return TASKS[self.multilabel]

    @classmethod
    def named(cls, name: str, classes=None, validation_fraction: float = 0.15) -> "Task":
        if name not in TASKS:
            raise ValueError(f"unknown AudioSet task {name!r}; choose from {', '.join(TASKS)}")
        return cls(name == "music_genre_multilabel", tuple(classes) if classes else None, validation_fraction)


@dataclasses.dataclass
class Dataset:
    label_names: list[str]
    multilabel: bool
    splits: dict  # split -> (list[Segment], labels: [n] int64 or [n, C] uint8)
    skipped: list[skips.Skip]
    # Single-label tasks: balanced-train segments left out for carrying other genres too, as extra training
    # clips with soft targets [n, C] float32 (see label_segments); never from validation videos or eval.
    extra_train: tuple = ((), None)


def label_segments(segments, gmap: GenreMap, task: Task):
    """(kept, labels, label_names, extra, soft): the segments the task labels, and those a single-label task
    drops although they carry a chosen genre (two or more genres, or one chosen plus others), with the target
    mass split evenly over their chosen genres: soft [n, C] float32 rows."""
    names = list(task.classes or gmap.names)
    unknown = [c for c in names if c not in gmap.names]
    if unknown:
        close = [m for c in unknown for m in difflib.get_close_matches(c, gmap.names, n=1, cutoff=0.4)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"unknown genres {unknown}{hint}; AudioSet's top-level music genres are: "
                         f"{', '.join(gmap.names)}")
    col = {gmap.names.index(c): i for i, c in enumerate(names)}
    kept, hots, extra, soft_hots = [], [], [], []
    for s in segments:
        gs = gmap.genres_of(s.labels)
        hot = [col[g] for g in gs if g in col]
        if hot and (task.multilabel or len(gs) == 1):
            kept.append(s)
            hots.append(hot)
        elif hot:
            extra.append(s)
            soft_hots.append(hot)
    soft = np.zeros((len(extra), len(names)), np.float32)
    for row, hot in zip(soft, soft_hots):
        row[hot] = 1 / len(hot)
    if not task.multilabel:
        return kept, np.asarray([h[0] for h in hots], np.int64), names, extra, soft
    y = np.zeros((len(kept), len(names)), np.uint8)
    for row, hot in zip(y, hots):
        row[hot] = 1
    return kept, y, names, extra, soft


def _genre_counts(segments, gmap: GenreMap, task: Task) -> str:
    """'Jazz 2, Pop music 3': per genre, the clips among `segments` that a task of that one genre keeps."""
    counts: collections.Counter = collections.Counter()
    for s in segments:
        gs = gmap.genres_of(s.labels)
        if task.multilabel or len(gs) == 1:
            counts.update(gs)
    return ", ".join(f"{gmap.names[g]} {n}" for g, n in sorted(counts.items(), key=lambda c: gmap.names[c[0]]))


def no_clip_error(manual_dir: str, segments, gmap: GenreMap, task: Task) -> ReleaseError:
    """The refusal of a task whose genres no clip of the release carries, with the genres that have clips."""
    chosen = ", ".join(task.classes) if task.classes else "any music genre"
    rule = "" if task.multilabel else (" (this task keeps clips with exactly one genre; task = "
                                       "\"music_genre_multilabel\" also keeps clips with several)")
    return ReleaseError(f"{manual_dir}: no clip of this release is labelled {chosen} for task {task.name}{rule}; "
                        f"genres with clips for this task: {_genre_counts(segments, gmap, task) or 'none'}; "
                        f"choose `classes` among them in the --config file")


def require_every_split(manual_dir: str, splits: dict, raw: dict, gmap: GenreMap, task: Task) -> None:
    """Refuse a task with a split that none of its clips falls in: compare needs clips in each. A class missing
    from some split is accepted: the scores cover the classes a split has (classify.metrics)."""
    empty = [s for s, (segs, _) in splits.items() if not len(segs)]
    if empty:
        which = dict.fromkeys("eval" if s == "test" else "balanced_train" for s in empty)
        sizes = ", ".join(f"{s} {len(segs)}" for s, (segs, _) in splits.items())
        raise ReleaseError(
            f"{manual_dir}: no clip labelled {', '.join(task.classes or ['any music genre'])} for task {task.name} "
            f"falls in the {' and '.join(empty)} split (clips per split: {sizes}; train/validation are bal_train/ "
            f"split by video, test is eval/); genres with clips in {' and '.join(RELEASE_DIRS[w] for w in which)}/ "
            f"for this task: {_genre_counts([g for w in which for g in raw[w]], gmap, task) or 'none'}; add one "
            f"of them to `classes` in the --config file")


def validation_videos(video_ids, fraction: float) -> set[str]:
    """A deterministic `fraction` of the distinct video ids (by SHA-1 rank; at least one when there are two)."""
    ids = sorted(set(video_ids), key=lambda v: (hashlib.sha1(v.encode()).hexdigest(), v))
    k = int(round(fraction * len(ids)))
    if len(ids) >= 2 and fraction > 0:
        k = min(max(k, 1), len(ids) - 1)
    return set(ids[:k])


def load(manual_dir: str, task: Task = Task()) -> Dataset:
    """The task's segments from the release in `manual_dir`: single-label keeps segments of exactly one of the
    25 genres, that one chosen; multi-label, any chosen (multi-hot). train/validation split balanced-train by
    video id; test is eval."""
    for name in (ONTOLOGY, CLASS_LABELS):
        if not os.path.exists(os.path.join(manual_dir, name)):
            raise ReleaseError(f"{os.path.join(manual_dir, name)}: missing; put AudioSet's {name} (from "
                               f"research.google.com/audioset/download.html) beside bal_train/ and eval/")
    gmap = genre_map(os.path.join(manual_dir, ONTOLOGY), os.path.join(manual_dir, CLASS_LABELS))
    bad: list[skips.Skip] = []
    parts, raw = {}, {}
    for which, sub in RELEASE_DIRS.items():
        paths = sorted(glob.glob(os.path.join(manual_dir, sub, "*.tfrecord")))
        if not paths:
            raise ReleaseError(f"{os.path.join(manual_dir, sub)}: no *.tfrecord files; point --manual-dir at the "
                               f"unpacked audioset_v1_embeddings folder (it holds bal_train/ and eval/)")
        raw[which] = []
        for p in paths:
            segs, b = read_file(p)
            raw[which] += segs
            bad += b
        parts[which] = label_segments(raw[which], gmap, task)
    if not any(len(p[0]) for p in parts.values()):  # an empty store would only fail later, with less to say
        raise no_clip_error(manual_dir, [s for segs in raw.values() for s in segs], gmap, task)
    segs, y, names, extra, soft = parts["balanced_train"]
    val = validation_videos([s.video_id for s in segs], task.validation_fraction)
    is_val = np.array([s.video_id in val for s in segs], bool)
    splits = {"train": ([s for s, v in zip(segs, is_val) if not v], y[~is_val]),
              "validation": ([s for s, v in zip(segs, is_val) if v], y[is_val]),
              "test": parts["eval"][:2]}
    require_every_split(manual_dir, splits, raw, gmap, task)
    if task.multilabel:
        return Dataset(names, True, splits, bad)
    # never from validation videos (nor eval)
    train_extra = np.array([s.video_id not in val for s in extra], bool)
    return Dataset(names, False, splits, bad, ([s for s, t in zip(extra, train_extra) if t], soft[train_extra]))
