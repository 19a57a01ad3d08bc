"""The one embedding core, shared by every runner (extract, beam_extract, npz_output: they only decide where
run_shard runs): open_store(job) refuses a store made differently; plan cuts each split into contiguous
shards, assign picks this process's; run_shard embeds one shard and writes it atomically; finalize completes
info.json. A Job is plain data (it pickles to Beam workers); its identity (EmbeddingSpec, source identity;
never a path) is in info.json and hashed into every shard, so a damaged file costs only the shards that do
not match.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Callable

import numpy as np

from vggish_jax import audio, skips, spec as spec_lib
from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import host, store
from vggish_jax.pipeline.sources import Source, file_stamp

FORMAT_VERSION = 3
SPEC_FIELDS = spec_lib.RESUME_FIELDS  # + dtype and frontend precision: bfloat16 and float32 rows never mix


def rows_spec(model_spec: spec_lib.EmbeddingSpec, payload: str, postprocess: bool) -> spec_lib.EmbeddingSpec:
    """The spec of the rows a model writes for a source (stored mels were made by the NumPy oracle)."""
    spec = model_spec.replace(postprocess=bool(postprocess))
    return spec.replace(frontend_precision="numpy") if payload == "mel" else spec


@dataclasses.dataclass(frozen=True)
class Task:
    """One shard: clips `indices` of `split`, written to store.shard_path(out, split, index)."""
    split: str
    index: int
    indices: range


@dataclasses.dataclass
class Job:
    out: str  # the store directory
    source: Source
    spec: spec_lib.EmbeddingSpec  # of the rows written (postprocess included)
    shard_size: int
    record: dict = dataclasses.field(default_factory=dict)  # informative fields for info.json (weights path, ...)
    pad: bool = False  # zero-pad clips shorter than one example instead of skipping them
    workers: int = 0  # decode workers per shard
    processes: bool = False  # decode in jax-free worker processes (else threads)
    spec_from: str = "this run"  # how messages name this job's side and the store's
    name: str | None = None

    def identity(self) -> dict:
        return {spec_lib.KEY: self.spec.to_dict(), "source": self.source.identity()}

    @property
    def identity_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()

    def shard_path(self, task: Task) -> str:
        return store.shard_path(self.out, task.split, task.index)


@dataclasses.dataclass
class Summary:
    out: str
    computed: dict[str, list[int]]  # split -> shards written by this run (this process)
    reused: dict[str, list[int]]  # split -> this process's shards found finished on disk
    num_clips: dict[str, int]  # split -> clips embedded (after skips); empty until complete
    skipped: list[dict]  # Skip.to_dict() + split and track_id
    complete: bool = True
    counters: dict[str, int] = dataclasses.field(default_factory=dict)  # Beam's
    seconds: float = 0.0
    warnings: list[dict] = dataclasses.field(default_factory=list)  # Caution.to_dict(): inputs used, warned about


def plan(splits: dict[str, int], shard_size: int) -> list[Task]:
    """Every split cut into contiguous shards of `shard_size` clips, in split order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [Task(s, i, range(i * shard_size, min(n, (i + 1) * shard_size)))
            for s, n in splits.items() for i in range(math.ceil(n / shard_size))]


def assign(tasks: list, process_index: int, process_count: int) -> list:
    """This process's part of the ordered task list: every process_count-th, from process_index."""
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in 0..{process_count - 1}")
    return tasks[process_index::process_count]


# ---- the store's identity ----

def open_store(job: Job, *, write: bool = True, log: Callable[[str], None] = print) -> dict:
    """info.json for `job` (incomplete); refuses, before writing anything, a store made differently."""
    path = os.path.join(job.out, store.INFO)
    old = None
    if os.path.exists(path):
        try:
            old = store.read_info(job.out)
        except store.StoreError as e:
            log(f"{str(e).split('; rerun')[0]}; rewriting it (shards that do not match this run are recomputed)")
    if old is not None:
        _check(job, old, path)
    src = job.source
    splits = src.splits()
    info = {
        "format_version": FORMAT_VERSION, **job.record, "shard_size": job.shard_size,
        "final_relu": job.spec.final_relu, "postprocess": job.spec.postprocess is not None, "dtype": job.spec.dtype,
        "label_names": list(src.label_names), "multilabel": bool(src.multilabel),
        "frontend": dict(spec_lib.frontend_items(job.spec.frontend or frontend.DEFAULT)),
        "frontend_precision": job.spec.frontend_precision,
        "embedding": "uint8 PCA-quantised" if job.spec.postprocess else "float32 raw 128-d",
        spec_lib.KEY: job.spec.to_dict(), "source_identity": src.identity(),
        "splits": {**(old or {}).get("splits", {}), **{s: {"candidates": n, "num_shards": math.ceil(n / job.shard_size)}
                                                         for s, n in splits.items()}},
        "complete": False, "skipped": [_skip_dict(s) for s in src.skipped()],
    }
    if write:
        store.write_info(job.out, info)
    return info


def _check(job: Job, old: dict, path: str) -> None:
    found_from = job.name or path
    try:
        spec_lib.require_compatible(job.spec, store.spec_of(old, path), expected_from=job.spec_from,
                                    found_from=found_from, fields=SPEC_FIELDS)
    except spec_lib.SpecMismatch as e:
        raise spec_lib.SpecMismatch(f"{e}; its rows would mix two models: use a new --out, delete {found_from}, "
                                    f"or rerun with the weights and settings that made it") from None
    ident, old_ident = job.source.identity(), old.get("source_identity", {})
    diff = [_change(k, old_ident.get(k), ident.get(k)) for k in sorted(set(ident) | set(old_ident))
             if old_ident.get(k) != ident.get(k)]
    if old.get("label_names", list(job.source.label_names)) != list(job.source.label_names):
        diff.append(f"label_names: {old['label_names']!r} -> {list(job.source.label_names)!r}")
    shared = [s for s in job.source.splits() if s in old.get("splits", {})]
    if shared and old.get("shard_size", job.shard_size) != job.shard_size:
        diff.append(f"shard_size: {old['shard_size']!r} -> {job.shard_size!r}")
    if diff:
        raise ValueError(f"{found_from}: holds embeddings made with other settings ({', '.join(diff)}); "
                         f"use a new --out or delete it")


def _change(key: str, old, new) -> str:
    if isinstance(old, list) and isinstance(new, list):  # a file list: name what changed, not both lists
        added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        more = lambda x: "..." if len(x) > 3 else ""  # noqa: E731
        return f"{key}: added {added[:3]}{more(added)}, removed {removed[:3]}{more(removed)}"
    return f"{key}: {old!r} -> {new!r}"


# ---- one shard ----

def shard_done(job: Job, task: Task, log: Callable[[str], None] = print) -> bool:
    """A readable shard of this job holding every clip of `task` (embedded or skipped)."""
    path = job.shard_path(task)
    if not os.path.exists(path):
        return False
    try:
        z = store.shard_arrays(path)
    except store.ShardDamaged as e:
        log(f"{e}; recomputing it")
        return False
    if "identity" in z and str(z["identity"]) != job.identity_hash:
        log(f"{path}: made by another job than this one; recomputing it")
        return False
    return len(z["track_ids"]) + len(z.get("skipped", ())) == len(task.indices)


def run_shard(job: Job, task: Task, model) -> dict:
    """Embed `task`'s clips with `model` (None for payload 'embedding'), write the shard; returns
    {'clips', 'examples', 'skipped': [Skip dicts]}."""
    clips = list(job.source.clips(task.split, task.indices))
    stamps = [file_stamp(c.path) if c.path else "" for c in clips]  # before decoding: a later change is new
    with audio.collect_cautions() as cautions:  # inputs used but warned about (over-range audio, ...)
        results = _embed(job, clips, model)
    kept = [(c, e, st) for c, e, st in zip(clips, results, stamps) if isinstance(e, np.ndarray)]
    bad = [{**_skip_dict(e), "split": task.split, "track_id": c.index}
           for c, e in zip(clips, results) if not isinstance(e, np.ndarray)]
    rows = [model.postprocess(e) if job.spec.postprocess and job.source.payload != "embedding" else e
            for _, e, _ in kept]
    labels = [c.label for c, _, _ in kept]
    if job.source.multilabel:
        labels = np.stack(labels) if labels else np.zeros((0, len(job.source.label_names)), np.uint8)
    store.write_shard(job.shard_path(task), [c.index for c, _, _ in kept], labels, rows,
                      keys=[c.key for c, _, _ in kept], identity=job.identity_hash,
                      skipped=np.asarray([json.dumps(b) for b in bad], dtype=str),
                      stamps=np.asarray([st for _, _, st in kept], dtype=str),
                      cautions=np.asarray([json.dumps(c.to_dict()) for c in cautions], dtype=str))
    return {"clips": len(kept), "examples": int(sum(r.shape[0] for r in rows)), "skipped": bad,
            "warnings": [c.to_dict() for c in cautions]}


def _embed(job: Job, clips: list, model) -> list:
    """Per clip: [n, 128] float32 (or the stored embeddings), or a Skip."""
    payload = job.source.payload
    if payload == "embedding":
        return [c.data for c in clips]
    if payload == "mel":
        if not clips:
            return []
        counts = np.cumsum([c.data.shape[0] for c in clips])[:-1]
        emb = model.embed_examples(np.concatenate([c.data for c in clips]))
        return list(np.split(emb, counts))
    if payload == "waveform":
        out = dict(model.embed_stream((c.index, c.data) for c in clips))
        return [out[c.index] if isinstance(out[c.index], np.ndarray)
                else host.skip_of(c.key, out[c.index], on_disk=False) for c in clips]
    if payload == "audio":
        # worker processes (0: decode here); threads (Beam's workers) at least one
        workers = job.workers if job.processes else max(1, job.workers)
        found = list(model.iter_files([c.path for c in clips], pad=job.pad, workers=workers,
                                      processes=job.processes))
        return [e if isinstance(e, np.ndarray) else host.skip_of(c.path, e) for c, (_, e) in zip(clips, found)]
    raise ValueError(f"unknown payload {payload!r}")


def _skip_dict(s) -> dict:
    return s.to_dict() if isinstance(s, skips.Skip) else dict(s)


# ---- the end ----

def finalize(job: Job, info: dict, log: Callable[[str], None] = print) -> Summary | None:
    """Mark info.json complete once every shard of the plan exists; None (and a log line) while some are missing."""
    tasks = plan(job.source.splits(), job.shard_size)
    missing = [t for t in tasks if not shard_done(job, t, log)]
    if missing:
        t = missing[0]
        log(f"{job.out}: {len(missing)} shards are not done yet (e.g. {t.split} {t.index}); rerun the same command "
            f"to complete it")
        return None
    skipped, warnings, num_clips = list(info["skipped"]), [], {}
    for t in tasks:
        z = store.shard_arrays(job.shard_path(t))
        num_clips[t.split] = num_clips.get(t.split, 0) + z["track_ids"].shape[0]
        skipped += [json.loads(str(s)) for s in z.get("skipped", [])]
        warnings += [json.loads(str(c)) for c in z.get("cautions", [])]
    num_clips.update({s: 0 for s in job.source.splits() if s not in num_clips})
    info.update(complete=True, skipped=skipped, warnings=warnings, num_clips=num_clips)
    store.write_info(job.out, info)
    return Summary(job.out, {}, {}, num_clips, skipped, warnings=warnings)
