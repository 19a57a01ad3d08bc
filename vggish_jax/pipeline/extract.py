"""Embed every clip of a dataset with VGGish into per-split shards (vggish_jax.pipeline.store), resumably.

A shard is a fixed, contiguous range of `shard_size` clips in data-source order (ascending track_id), so a
rerun maps the same clips to the same shard and skips every shard already on disk. Shards and info.json are
written atomically: killing the job loses at most the shards in flight, never a finished one.

Every clip goes through the device path (`vggish_jax.pipeline.device.AudioEmbedder`), batches sharded over
every (local) device:
  * waveform sources, `from_audio=True` (mp3s decoded and resampled to 16 kHz in worker processes that import
    no jax) and the `fma/*_waveform` TFDS datasets (int16 16 kHz records): the device runs the frontend and
    the model. Skipped clips of `from_audio` are only known after decoding; each shard records its own in
    shard-NNNNN.skipped.json;
  * stored-mel TFDS datasets (`fma/small`, ...): the log-mels computed at build time go to the model.

Several processes (`jax.distributed` initialised, or `process_index`/`process_count` given): the full shard
list is split round-robin (`assign_shards`), each process writes its own shards, and process 0 writes
info.json, marking it complete only once every shard of every process exists. A process that finishes
before the others leaves it incomplete; rerunning the same command on any number of processes computes only
the missing shards and completes it.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import math
import os
import sys
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from vggish_jax import atomic, spec as spec_lib
from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import store
from vggish_jax.datasets import decode, fma_metadata as meta
from vggish_jax.pipeline import host

FORMAT_VERSION = 2
# Settings besides the embedding spec that must match between runs writing into the same directory. The
# model's identity is the spec (weights content hash, final_relu, postprocess, frontend, dtype), never a path.
_SETTINGS = ("dataset", "source", "shard_size", "label_names", "frontend_precision")
_SPEC_FIELDS = spec_lib.IDENTITY_FIELDS + ("dtype",)  # bfloat16 and float32 shards must not mix either


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
    computed: dict[str, list[int]]  # split -> shard indices computed in this run (by this process)
    reused: dict[str, list[int]]  # split -> shard indices of this process found finished on disk
    num_clips: dict[str, int]  # split -> clips embedded (after skips); empty until complete
    skipped: list[dict]
    complete: bool = True  # every shard of every process exists and info.json says so


def assign_shards(shards: list, process_index: int, process_count: int) -> list:
    """This process's part of the full, ordered shard list: every process_count-th, from process_index.

    Deterministic and disjoint; the union over all processes is the whole list, for any process_count.
    """
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in 0..{process_count - 1}")
    return shards[process_index::process_count]


def extract(dataset: str = "fma/small", *, data_dir: str, out: str, weights, manual_dir: str | None = None,
            batch_size: int = 62, shard_size: int = 128, workers: int | None = None, final_relu: bool | None = None,
            postprocess: bool = False, dtype: str = "float32", from_audio: bool = False, download: bool = False,
            precision: str = "float32", process_index: int | None = None, process_count: int | None = None,
            progress: bool = True, log: Callable[[str], None] | None = None) -> Summary:
    """Embed all splits of `dataset` ('fma/small', 'fma/medium', ...) into `out`; resume if `out` has shards.

    weights: a weights directory (`vggish-jax convert`) or an Embedder. The TFDS dataset under `data_dir` is
    built first if needed (from `manual_dir`), unless `from_audio`, which reads the mp3s directly.
    batch_size: examples per device call (of an Embedder given as `weights`: its own). precision: the device
    frontend's ("float32", or "float64" to match the NumPy oracle within 1e-5) for waveform sources, when
    `weights` is a directory. process_index/process_count default to jax's.
    """
    import jax

    from vggish_jax.pipeline.embed import Embedder, load_pretrained

    log = log or (lambda m: print(m, file=sys.stderr))
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    workers = decode.default_workers() if workers is None else workers
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    assign_shards([], process_index, process_count)  # validates the pair before any work
    if isinstance(weights, Embedder):
        embedder, weights_dir = weights, weights.weights_dir or "<in-memory Embedder>"
    else:
        embedder = load_pretrained(weights, final_relu=final_relu, dtype=dtype, batch_size=batch_size,
                                   precision=precision)
        weights_dir = os.path.abspath(os.fspath(weights))
    if postprocess and embedder.pca is None:
        raise ValueError(f"{weights_dir}: these weights have no PCA params, so --postprocess is impossible; "
                         f"convert them with PCA params or drop --postprocess")

    embedding_spec = embedder.spec.replace(postprocess=bool(postprocess))
    _check_spec(out, embedding_spec, weights_dir)
    source = (_AudioSource if from_audio else _TfdsSource)(dataset, data_dir, manual_dir, workers, download)
    device = embedder.device
    info = {
        "format_version": FORMAT_VERSION, "dataset": dataset, "source": "audio" if from_audio else "tfds",
        "shard_size": shard_size, "final_relu": bool(embedder.final_relu), "postprocess": bool(postprocess),
        "dtype": str(embedder.dtype), "weights": weights_dir, "weights_metadata": embedder.metadata,
        "label_names": list(source.label_names), "frontend": dataclasses.asdict(frontend.DEFAULT),
        "frontend_precision": frontend_precision(device, source.waveforms),
        "embedding": "uint8 PCA-quantised" if postprocess else "float32 raw 128-d",
        spec_lib.KEY: embedding_spec.to_dict(),
    }
    _check_compatible(out, info)
    plans = [Plan(split, n, shard_size) for split, n in source.sizes().items()]
    info["splits"] = {p.split: {"candidates": p.num_clips, "num_shards": p.num_shards} for p in plans}
    info["complete"] = False
    info["skipped"] = source.skipped_before()
    if process_index == 0:
        store.write_info(out, info)

    mine = assign_shards([(p, i) for p in plans for i in range(p.num_shards)], process_index, process_count)
    todo, reused = [], {p.split: [] for p in plans}
    for p, i in mine:
        if _shard_done(out, p, i, source.per_shard_skips):
            reused[p.split].append(i)
        else:
            todo.append((p, i))
    total = sum(len(p.shard_range(i)) for p, i in mine)
    done = sum(len(p.shard_range(i)) for p in plans for i in reused[p.split])
    who = f" (process {process_index} of {process_count})" if process_count > 1 else ""
    log(f"extract {dataset} -> {out}{who}: {sum(map(len, reused.values()))} shards already done, "
        f"{len(todo)} to compute ({total - done} of {total} clips) on {device.num_devices} device(s)")

    computed = {p.split: [] for p in plans}
    with tqdm(total=total, initial=done, unit="clip", desc=f"extract {dataset}", disable=not progress or None,
              file=sys.stderr, dynamic_ncols=True) as bar:
        clips = source.clips(todo, ahead=shard_size + 2 * max(1, workers))
        for (plan, index), shard in _group(embed_clips(clips, device, embedder.batch_size, source.waveforms)):
            write_shard(out, plan, index, shard, embedder, postprocess, source.per_shard_skips)
            computed[plan.split].append(index)
            bar.update(len(plan.shard_range(index)))

    missing = [(p.split, i) for p in plans for i in range(p.num_shards)
               if not _shard_done(out, p, i, source.per_shard_skips)]
    if missing or process_index != 0:
        if missing:
            log(f"extract {dataset}{who}: my shards are done; {len(missing)} shards of other processes are not "
                f"yet (e.g. {missing[0][0]} {missing[0][1]}); rerun the same command to complete {out}")
        return Summary(out, computed, reused, {}, [], complete=False)
    skipped = source.skipped_before() + _shard_skips(out, plans) if source.per_shard_skips else source.skipped_before()
    num_clips = {p.split: sum(len(store.read_shard(store.shard_path(out, p.split, i)).track_ids)
                              for i in range(p.num_shards)) for p in plans}
    info.update(complete=True, skipped=skipped, num_clips=num_clips)
    store.write_info(out, info)
    log(f"extract {dataset}: done; clips per split {num_clips}; {len(skipped)} skipped (listed in info.json)")
    return Summary(out, computed, reused, num_clips, skipped)


def frontend_precision(device, waveforms: bool) -> str:
    """info.json's record of which frontend made the log-mels (a setting a rerun must not change)."""
    # Waveform sources: the device frontend; stored mels: the NumPy oracle, run when the dataset was built.
    return f"device {device.precision}" if waveforms else "numpy float64 (at build)"


def record_clip(record, waveforms: bool) -> dict:
    """A TFDS record -> a clip: its int16 'wave' (the *_waveform builds) or its stored 'mel'."""
    clip = {"track_id": int(record["track_id"]), "label": int(record["label"])}
    if waveforms:
        clip["wave"] = np.asarray(record["waveform"], np.int16)
    else:
        clip["mel"] = np.asarray(record["mel"], np.float32)
    return clip


def audio_clip(split: str, track_id: int, label: int, path: str, wave: np.ndarray | str) -> dict:
    """`host.decode_16k`'s result for one file -> a clip with its 'wave', or a skip entry with the reason."""
    if isinstance(wave, str):
        return {"track_id": track_id, "split": split, "path": path, "reason": wave}
    return {"track_id": track_id, "label": label, "wave": wave}


def embed_clips(clips: Iterable[tuple[tuple, dict]], device, batch_size: int,
                waveforms: bool) -> Iterator[tuple[tuple, dict]]:
    """(shard key, clip) in order -> the same with clip['emb'] [n, 128] (clips with a 'reason' pass through).

    The one embedding path of every extraction (this module's and the Beam workers'). Keys are (Plan,
    shard index); a shard's clips are consecutive. Clips come from `record_clip` or `audio_clip`.
    Waveforms stream through the device function, batched across clips and shards; stored log-mels are
    batched per shard (a shard holds enough examples to fill the batches).
    """
    if waveforms:
        stream = (((key, c), c["wave"] if "wave" in c else c["reason"]) for key, c in clips)
        for (key, c), emb in device.embed_stream(stream):
            c.pop("wave", None)
            if isinstance(emb, np.ndarray):
                c["emb"] = emb
            yield key, c
        return
    for key, shard in _group(clips):
        kept = [c for c in shard if "mel" in c]
        if kept:
            counts = [c["mel"].shape[0] for c in kept]
            emb = device.embed_examples(np.concatenate([c.pop("mel") for c in kept]), batch_size)
            for c, e in zip(kept, np.split(emb, np.cumsum(counts)[:-1])):
                c["emb"] = e
        for c in shard:
            yield key, c


def _check_spec(out: str, expected: spec_lib.EmbeddingSpec, weights_dir: str) -> None:
    """Refuse to add shards to `out` if its info.json records another model (by content, not path)."""
    path = os.path.join(out, store.INFO)
    if not os.path.exists(path):
        return
    try:
        found = spec_lib.read(store.read_info(out), path)
        spec_lib.require_compatible(expected, found, expected_from=f"weights {weights_dir}", found_from=path,
                                    fields=_SPEC_FIELDS)
    except spec_lib.SpecMismatch as e:
        raise spec_lib.SpecMismatch(f"{e}; its shards would mix two models: use a new --out directory, delete "
                                    f"{out}, or rerun with the weights and settings that made it") from None


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


def shard_finished(out: str, split: str, index: int, expected: int, per_shard_skips: bool) -> bool:
    """A readable shard with all its `expected` clips (audio sources: at most that many, plus its skip list)."""
    path = store.shard_path(out, split, index)
    if not os.path.exists(path):
        return False
    try:
        with np.load(path) as z:
            n = z["track_ids"].shape[0]
    except Exception:  # unreadable (e.g. a disk-full write): recompute it
        return False
    if per_shard_skips:
        return n <= expected and os.path.exists(skips_path(out, split, index))
    return n == expected


def _shard_done(out: str, plan: Plan, index: int, per_shard_skips: bool) -> bool:
    return shard_finished(out, plan.split, index, len(plan.shard_range(index)), per_shard_skips)


def write_shard(out, plan, index, clips, embedder, postprocess, per_shard_skips) -> None:
    """One shard's embedded clips (postprocessed if asked), after its skip list when skips are per shard."""
    kept = [c for c in clips if "emb" in c]
    if per_shard_skips:  # written first: the shard file is the commit marker
        atomic.write_json(skips_path(out, plan.split, index), [c for c in clips if "emb" not in c], indent=1)
    parts = [embedder.postprocess(c["emb"]) if postprocess else c["emb"] for c in kept]
    store.write_shard(store.shard_path(out, plan.split, index), [c["track_id"] for c in kept],
                      [c["label"] for c in kept], parts)


def skips_path(out: str, split: str, index: int) -> str:
    return os.path.join(out, split, f"shard-{index:05d}.skipped.json")


def _shard_skips(out: str, plans: list[Plan]) -> list[dict]:
    skipped = []
    for p in plans:
        for i in range(p.num_shards):
            with open(skips_path(out, p.split, i)) as f:
                skipped.extend(json.load(f))
    return skipped


def _group(items: Iterable[tuple[tuple, dict]]) -> Iterator[tuple[tuple, list[dict]]]:
    """(shard key, clip) pairs in shard order -> (shard key, [clips]) once a shard's clips are all in."""
    current, clips = None, []
    for key, clip in items:
        if key != current:
            current, clips = key, []
        clips.append(clip)
        if len(clips) == len(key[0].shard_range(key[1])):
            yield key, clips


class _TfdsSource:
    """A built TFDS dataset: stored log-mels, or the int16 16 kHz waveforms of the *_waveform configs."""
    per_shard_skips = False

    def __init__(self, dataset, data_dir, manual_dir, workers, download):
        from vggish_jax.datasets import fma

        self.builder = fma.prepare(dataset, data_dir=data_dir, manual_dir=manual_dir, workers=workers,
                                   download=download)
        self.label_names = fma.label_names(self.builder)
        self._sources = fma.data_sources(self.builder)
        self.waveforms = "waveform" in self.builder.info.features

    def sizes(self) -> dict[str, int]:
        return {s: len(ds) for s, ds in self._sources.items()}

    def skipped_before(self) -> list[dict]:
        return list(self.builder.info.metadata.get("skipped", []))

    def _read(self, item):
        split, j = item
        return record_clip(self._sources[split][j], self.waveforms)

    def clips(self, todo, ahead) -> Iterator[tuple[tuple, dict]]:
        items = [((p, i), (p.split, j)) for p, i in todo for j in p.shard_range(i)]
        with cf.ThreadPoolExecutor(1) as pool:  # reads overlap the model; one reader keeps order cheap
            clips = decode.ordered_map(self._read, [it for _, it in items], pool, ahead)
            yield from zip([k for k, _ in items], clips)


class _AudioSource:
    """The FMA mp3s themselves, decoded and resampled to 16 kHz in worker processes (no TFDS build)."""
    per_shard_skips = True
    waveforms = True

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
        self._skipped, self._tracks = [], {}
        for split, tracks in meta.select(meta.read_tracks(sources.tracks_csv), subset).items():
            self._tracks[split], skipped = fma.select_clips(tracks, self.label_names, sources.audio_root)
            self._skipped += [{"track_id": t.track_id, "split": split, "path": path, "reason": reason}
                              for t, path, reason in skipped]
        self.workers = workers

    def sizes(self) -> dict[str, int]:
        return {s: len(t) for s, t in self._tracks.items()}

    def skipped_before(self) -> list[dict]:
        return list(self._skipped)

    def clips(self, todo, ahead) -> Iterator[tuple[tuple, dict]]:
        items = [((p, i), self._tracks[p.split][j]) for p, i in todo for j in p.shard_range(i)]
        pool = decode.process_pool(self.workers)
        try:
            waves = decode.ordered_map(host.decode_16k, [path for _, (_, path) in items], pool, ahead)
            for ((key, (t, path)), wave) in zip(items, waves):
                yield key, audio_clip(key[0].split, t.track_id, self.label_names.index(t.genre_top), path, wave)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)


def load(out: str, split: str) -> store.Split:
    """The embeddings of one split (see vggish_jax.pipeline.store.load_split); refuses an unfinished extraction."""
    info = store.read_info(out)
    if not info.get("complete", False):
        raise RuntimeError(f"{out}: extraction did not finish; rerun the same `vggish-jax extract` command to "
                           f"complete it")
    return store.load_split(out, split)
