"""Embed every clip of a dataset with VGGish into per-split shards (vggish_jax.pipeline.store), resumably.

A shard is a fixed, contiguous range of `shard_size` clips in data-source order (ascending track_id), so a
rerun maps the same clips to the same shard and skips every shard already on disk. Shards and info.json are
written atomically: killing the job loses at most the shards in flight, never a finished one.

Two sources of log-mels:
  * the TFDS data source (default): decoding happened once at build time; clips are read by threads;
  * `from_audio=True`: the mp3s, decoded and resampled in worker processes ahead of the model. Skipped
    clips are then only known after decoding; each shard records its own in shard-NNNNN.skipped.json.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import math
import os
import sys
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import store
from vggish_jax.datasets import decode, fma_metadata as meta

FORMAT_VERSION = 1
# Settings that must match between runs writing into the same directory.
_SETTINGS = ("dataset", "source", "shard_size", "final_relu", "postprocess", "dtype", "weights", "label_names")


@dataclasses.dataclass
class Plan:
    """One split: the clips (in order) and their shard ranges."""
    split: str
    num_clips: int
    shard_size: int

    @property
    def num_shards(self) -> int:
        return math.ceil(self.num_clips / self.shard_size)

    def shard_range(self, index: int) -> range:
        return range(index * self.shard_size, min(self.num_clips, (index + 1) * self.shard_size))


@dataclasses.dataclass
class Summary:
    out: str
    computed: dict[str, list[int]]  # split -> shard indices computed in this run
    reused: dict[str, list[int]]  # split -> shard indices found finished on disk
    num_clips: dict[str, int]  # split -> clips embedded (after skips)
    skipped: list[dict]


def extract(dataset: str = "fma/small", *, data_dir: str, out: str, weights, manual_dir: str | None = None,
            batch_size: int = 64, shard_size: int = 128, workers: int | None = None, final_relu: bool | None = None,
            postprocess: bool = False, dtype: str = "float32", from_audio: bool = False, download: bool = False,
            progress: bool = True, log: Callable[[str], None] | None = None) -> Summary:
    """Embed all splits of `dataset` ('fma/small', 'fma/medium', ...) into `out`; resume if `out` has shards.

    weights: a weights directory (`vggish-jax convert`) or an Embedder. The TFDS dataset under `data_dir` is
    built first if needed (from `manual_dir`), unless `from_audio`, which reads the mp3s directly.
    """
    from vggish_jax.pipeline.embed import Embedder, load_pretrained

    log = log or (lambda m: print(m, file=sys.stderr))
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    workers = decode.default_workers() if workers is None else workers
    if isinstance(weights, Embedder):
        embedder, weights_dir = weights, weights.metadata.get("path", "<in-memory Embedder>")
    else:
        embedder = load_pretrained(weights, final_relu=final_relu, dtype=dtype, batch_size=batch_size)
        weights_dir = os.path.abspath(os.fspath(weights))
    if postprocess and embedder.pca is None:
        raise ValueError(f"{weights_dir}: these weights have no PCA params, so --postprocess is impossible; "
                         f"convert them with PCA params or drop --postprocess")

    source = (_AudioSource if from_audio else _TfdsSource)(dataset, data_dir, manual_dir, workers, download)
    info = {
        "format_version": FORMAT_VERSION, "dataset": dataset, "source": "audio" if from_audio else "tfds",
        "shard_size": shard_size, "final_relu": bool(embedder.final_relu), "postprocess": bool(postprocess),
        "dtype": str(embedder.dtype), "weights": weights_dir, "weights_metadata": embedder.metadata,
        "label_names": list(source.label_names), "frontend": dataclasses.asdict(frontend.DEFAULT),
        "embedding": "uint8 PCA-quantised" if postprocess else "float32 raw 128-d",
    }
    _check_compatible(out, info)
    plans = [Plan(split, n, shard_size) for split, n in source.sizes().items()]
    info["splits"] = {p.split: {"candidates": p.num_clips, "num_shards": p.num_shards} for p in plans}
    info["complete"] = False
    info["skipped"] = source.skipped_before()
    store.write_info(out, info)

    todo, reused = [], {p.split: [] for p in plans}
    for p in plans:
        for i in range(p.num_shards):
            if _shard_done(out, p, i, source.per_shard_skips):
                reused[p.split].append(i)
            else:
                todo.append((p, i))
    total = sum(p.num_clips for p in plans)
    done = sum(len(p.shard_range(i)) for p in plans for i in reused[p.split])
    log(f"extract {dataset} -> {out}: {sum(map(len, reused.values()))} shards already done, "
        f"{len(todo)} to compute ({total - done} of {total} clips)")

    computed = {p.split: [] for p in plans}
    with tqdm(total=total, initial=done, unit="clip", desc=f"extract {dataset}", disable=not progress or None,
              file=sys.stderr, dynamic_ncols=True) as bar:
        for (plan, index), clips in source.shards(todo, ahead=shard_size + 2 * max(1, workers)):
            _write_shard(out, plan, index, clips, embedder, postprocess, source.per_shard_skips)
            computed[plan.split].append(index)
            bar.update(len(plan.shard_range(index)))

    skipped = source.skipped_before() + _shard_skips(out, plans) if source.per_shard_skips else source.skipped_before()
    num_clips = {p.split: sum(len(store.read_shard(store.shard_path(out, p.split, i)).track_ids)
                              for i in range(p.num_shards)) for p in plans}
    info.update(complete=True, skipped=skipped, num_clips=num_clips)
    store.write_info(out, info)
    log(f"extract {dataset}: done; clips per split {num_clips}; {len(skipped)} skipped (listed in info.json)")
    return Summary(out, computed, reused, num_clips, skipped)


def _check_compatible(out: str, info: dict) -> None:
    path = os.path.join(out, store.INFO)
    if not os.path.exists(path):
        return
    old = store.read_info(out)
    diff = [k for k in _SETTINGS if old.get(k) != info.get(k)]
    if diff:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {info.get(k)!r}" for k in diff)
        raise ValueError(f"{out}: holds embeddings made with other settings ({details}); "
                         f"use a new --out directory or delete this one")


def _shard_done(out: str, plan: Plan, index: int, per_shard_skips: bool) -> bool:
    path = store.shard_path(out, plan.split, index)
    if not os.path.exists(path):
        return False
    try:
        with np.load(path) as z:
            n = z["track_ids"].shape[0]
    except Exception:  # unreadable (e.g. a disk-full write): recompute it
        return False
    expected = len(plan.shard_range(index))
    if per_shard_skips:
        return n <= expected and os.path.exists(_skips_path(out, plan.split, index))
    return n == expected


def _write_shard(out, plan, index, clips, embedder, postprocess, per_shard_skips) -> None:
    kept = [c for c in clips if "mel" in c]
    if per_shard_skips:  # written first: the shard file is the commit marker
        _write_json(_skips_path(out, plan.split, index), [c for c in clips if "mel" not in c])
    if kept:
        counts = [c["mel"].shape[0] for c in kept]
        emb = embedder.embed_examples(np.concatenate([c["mel"] for c in kept]))
        if postprocess:
            emb = embedder.postprocess(emb)
        parts = np.split(emb, np.cumsum(counts)[:-1])
    else:
        parts = []
    store.write_shard(store.shard_path(out, plan.split, index), [c["track_id"] for c in kept],
                      [c["label"] for c in kept], parts)


def _skips_path(out: str, split: str, index: int) -> str:
    return os.path.join(out, split, f"shard-{index:05d}.skipped.json")


def _shard_skips(out: str, plans: list[Plan]) -> list[dict]:
    skipped = []
    for p in plans:
        for i in range(p.num_shards):
            with open(_skips_path(out, p.split, i)) as f:
                skipped.extend(json.load(f))
    return skipped


def _write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _group(items: Iterator[tuple[tuple, dict]], todo: list) -> Iterator[tuple[tuple, list[dict]]]:
    """(shard key, clip) pairs in shard order -> (shard key, [clips]) once a shard's clips are all in."""
    sizes = {(p.split, i): len(p.shard_range(i)) for p, i in todo}
    current, clips = None, []
    for key, clip in items:
        if key != current:
            current, clips = key, []
        clips.append(clip)
        if len(clips) == sizes[(key[0].split, key[1])]:
            yield key, clips


class _TfdsSource:
    per_shard_skips = False

    def __init__(self, dataset, data_dir, manual_dir, workers, download):
        from vggish_jax.datasets import fma

        self.builder = fma.prepare(dataset, data_dir=data_dir, manual_dir=manual_dir, workers=workers,
                                   download=download)
        self.label_names = fma.label_names(self.builder)
        self._sources = fma.data_sources(self.builder)

    def sizes(self) -> dict[str, int]:
        return {s: len(ds) for s, ds in self._sources.items()}

    def skipped_before(self) -> list[dict]:
        return list(self.builder.info.metadata.get("skipped", []))

    def _read(self, item):
        split, j = item
        r = self._sources[split][j]
        return {"track_id": int(r["track_id"]), "label": int(r["label"]), "mel": np.asarray(r["mel"], np.float32)}

    def shards(self, todo, ahead):
        items = [((p, i), (p.split, j)) for p, i in todo for j in p.shard_range(i)]
        with cf.ThreadPoolExecutor(1) as pool:  # reads overlap the model; one reader keeps order cheap
            clips = decode.ordered_map(self._read, [it for _, it in items], pool, ahead)
            yield from _group(zip([k for k, _ in items], clips), todo)


class _AudioSource:
    per_shard_skips = True

    def __init__(self, dataset, data_dir, manual_dir, workers, download):
        from vggish_jax.datasets import fma

        config = dataset.split("/", 1)[-1]
        cfg = next((c for c in fma.Fma.BUILDER_CONFIGS if c.name == config), None)
        if cfg is None:
            raise ValueError(f"unknown dataset {dataset!r}; choose one of "
                             f"{', '.join('fma/' + c.name for c in fma.Fma.BUILDER_CONFIGS)}")
        subset = cfg.subset
        sources = fma.find_sources(manual_dir, subset, work_dir=os.path.join(data_dir, "downloads"),
                                   download=download)
        self.label_names = meta.genre_names(subset)
        bad = set(meta.KNOWN_BAD)
        self._skipped, self._tracks = [], {}
        for split, tracks in meta.select(meta.read_tracks(sources.tracks_csv), subset).items():
            self._tracks[split] = []
            for t in tracks:
                path = meta.audio_path(sources.audio_root, t.track_id)
                if t.track_id in bad:
                    reason = f"{path}: listed by the FMA maintainers as having no or too short audio"
                elif t.genre_top not in self.label_names:
                    reason = f"{path}: genre {t.genre_top!r} is not one of the {len(self.label_names)} classes"
                else:
                    reason = None
                if reason:
                    self._skipped.append({"track_id": t.track_id, "split": split, "path": path, "reason": reason})
                else:
                    self._tracks[split].append((t, path))
        self.workers = workers

    def sizes(self) -> dict[str, int]:
        return {s: len(t) for s, t in self._tracks.items()}

    def skipped_before(self) -> list[dict]:
        return list(self._skipped)

    def shards(self, todo, ahead):
        items = [((p, i), self._tracks[p.split][j]) for p, i in todo for j in p.shard_range(i)]
        pool = decode.process_pool(self.workers)
        try:
            decoded = decode.ordered_map(decode.decode_clip, [path for _, (_, path) in items], pool, ahead)
            clips = (self._clip(key[0].split, t, path, d) for (key, (t, path)), d in zip(items, decoded))
            yield from _group(zip([k for k, _ in items], clips), todo)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _clip(self, split, t, path, decoded):
        if isinstance(decoded, str):
            return {"track_id": t.track_id, "split": split, "path": path, "reason": decoded}
        return {"track_id": t.track_id, "label": self.label_names.index(t.genre_top), "mel": decoded["mel"]}


def load(out: str, split: str) -> store.Split:
    """The embeddings of one split (see vggish_jax.pipeline.store.load_split); refuses an unfinished extraction."""
    info = store.read_info(out)
    if not info.get("complete", False):
        raise RuntimeError(f"{out}: extraction did not finish; rerun the same `vggish-jax extract` command to "
                           f"complete it")
    return store.load_split(out, split)
