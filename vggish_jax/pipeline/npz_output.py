"""`vggish-jax embed FILES --out OUT.npz` on the embedding core: a store beside the output, then OUT.npz + OUT.json.

On disk, for `--out OUT.npz`:
    OUT.store/   the core's store (info.json + run-NNNNN/shard-*.npz): each run embeds the files it still
                 needs into a split of its own, `flush_every` files per shard (a kill loses at most those)
    OUT.npz      one [n, 128] array per file, keyed by its resolved absolute path (np.load-able), rebuilt
                 from the store at the end of every run (also after Ctrl-C, SIGTERM or an error)
    OUT.json     the EmbeddingSpec, settings, hop_s and each row's start time per file, the skips of this
                 run ("errors": {path: reason} and "skipped": Skip records), "complete"
A file counts as done when the store holds it with the same size and mtime; a changed file is embedded
again and its newest rows win. One writer at a time (the store's lock); other settings are refused.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import zipfile
from typing import Callable

import numpy as np

from vggish_jax import atomic, skips, spec as spec_lib
from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import core, store, stored
from vggish_jax.pipeline.sources import file_key, file_stamp
from vggish_jax.pipeline.sources.files import Files


def out_paths(out: str) -> tuple[str, str, str]:
    """(OUT.npz, OUT.json, OUT.store) for an --out value (".npz" appended if missing)."""
    npz = out if out.endswith(".npz") else out + ".npz"
    return npz, npz[:-4] + ".json", npz[:-4] + ".store"


@dataclasses.dataclass
class Result:
    npz: str
    sidecar: str
    requested: int = 0
    already: int = 0  # requested files found done in the store
    new: int = 0  # files embedded by this run
    written: int = 0  # arrays in OUT.npz
    skipped: list = dataclasses.field(default_factory=list)  # Skip records of this run
    warnings: list = dataclasses.field(default_factory=list)  # Caution records of this run (used as given)
    complete: bool = False


def embed_to_npz(files: list[str], out: str, model, *, postprocess: bool, pad: bool = False, workers: int = 2,
                 flush_every: int = 16, settings: dict | None = None, log: Callable[[str], None] = print,
                 started: Callable[[int], None] | None = None, progress: Callable[[int], None] | None = None,
                 report: Callable[[Result], None] | None = None, unreadable: list[skips.Skip] = ()) -> Result:
    """Embed the files not yet in OUT's store, then rebuild OUT.npz + OUT.json.

    started(files already done) runs before the first file, progress(files) after each shard, report(Result)
    at the end, also after an error or Ctrl-C. workers: decode worker processes (0: in this process).
    unreadable: inputs found but not readable (e.g. a folder without permission): listed as skipped, and the
    run is not complete."""
    npz, sidecar, root = out_paths(os.path.abspath(out))
    result = Result(npz, sidecar, requested=len(files), skipped=list(unreadable))
    spec = model.spec.replace(postprocess=bool(postprocess))
    for folder in (os.path.dirname(npz), root):
        _refuse_extract_store(folder, npz)
    with store.locked(root, 0, what=npz):
        runs = [int(m.group(1)) for d in os.listdir(root) if (m := re.fullmatch(r"run-(\d{5})", d))]
        job = core.Job(root, Files([], f"run-{max(runs, default=-1) + 1:05d}"), spec, flush_every,
                       record={"dataset": "files", "source": "files", **(settings or {})}, pad=pad, workers=workers,
                       processes=True, spec_from=f"this run ({spec.describe()})", name=npz)
        core.open_store(job, write=False, log=log)  # refuses a store made differently, before any work
        if not runs and os.path.exists(npz):
            _adopt(npz, sidecar, job, log)
        latest = _index(root, job.identity_hash, log)
        keys = [file_key(f) for f in files]
        stamps = {k: file_stamp(f) for f, k in zip(files, keys)}
        done = {k for k, st in stamps.items() if st and k in latest and latest[k][2] == st}
        first = {}
        for f, k in zip(files, keys):  # a file given twice is embedded once
            first.setdefault(k, f)
        todo = [f for k, f in first.items() if k not in done]
        result.already = sum(k in done for k in keys)
        if started:
            started(result.already)
        job.source = Files(todo, job.source.split)
        info = core.open_store(job, write=bool(todo), log=lambda m: None)
        try:
            for task in core.plan(job.source.splits(), flush_every):
                done = core.run_shard(job, task, model)
                result.warnings += [skips.Caution.from_dict(c) for c in done["warnings"]]  # over-range audio etc.
                result.new += done["clips"]
                result.skipped += [skips.Skip.from_dict(s) for s in done["skipped"]]
                if progress:
                    progress(len(task.indices))
            result.complete = not unreadable  # files behind an unreadable folder were not embedded
            if todo:
                core.finalize(job, info, log=lambda m: None)
        finally:
            result.written = _build(root, job.identity_hash, npz, sidecar, keys, spec, settings or {}, result, log)
            if report:
                report(result)
    return result


def _refuse_extract_store(folder: str, npz: str) -> None:
    """An `extract` store where embed would write (its folder, or its own store's place) is another tool's
    output, perhaps being written right now: name it and its writer rather than compare settings with it."""
    try:
        info = store.read_info(folder) if os.path.isfile(os.path.join(folder, store.INFO)) else None
    except store.StoreError:  # damaged: whose it is cannot be told, and the store's own checks report it
        info = None
    if info is None or info.get("dataset") == "files":  # none, or embed's own store
        return
    running = store.writer(folder)
    whose = (f"another run is writing it ({running})" if running else
             f"the output of `vggish-jax extract` (dataset {info.get('dataset', '?')})")
    raise store.StoreError(f"{folder}: holds an extract store, {whose}, so embed cannot write {npz} there; "
                           f"choose another --out for embed")


def _adopt(npz: str, sidecar: str, job: core.Job, log) -> None:
    """An OUT.npz written before OUT.store existed becomes the store's first shard (file stamps unknown: the
    files asked for again are embedded again), so a rerun keeps every file it held."""
    if not os.path.exists(sidecar):
        raise spec_lib.SpecMismatch(f"{npz}: exists without {os.path.basename(sidecar)}, so how it was made is "
                                    f"unknown; delete it or choose another --out")
    try:
        old = stored.read_npz(npz)
    except (stored.StoredError, spec_lib.SpecMismatch) as e:  # unreadable, or no spec: cannot be trusted
        log(f"{npz}: damaged and without a store ({type(e.__cause__ or e).__name__}); its files are embedded again")
        return
    spec_lib.require_compatible(job.spec, old.spec, expected_from=job.spec_from, found_from=npz,
                                fields=core.SPEC_FIELDS)
    keys = list(old.embeddings)
    store.write_shard(store.shard_path(job.out, job.source.split, 0), range(len(keys)), [-1] * len(keys),
                      [e.values for e in old.embeddings.values()], keys=keys, identity=job.identity_hash,
                      stamps=[""] * len(keys), skipped=np.zeros(0, str))
    job.source = Files([], f"run-{int(job.source.split[4:]) + 1:05d}")


def _index(root: str, identity: str, log) -> dict[str, tuple[str, int, str]]:
    """key -> (shard path, row, stamp) of its newest rows in the store; damaged shards are named and removed,
    shards of another job (a store whose info.json was damaged) are named and left out."""
    latest = {}
    for path in store.shard_paths(root, "run-*"):
        try:
            z = store.shard_arrays(path)
        except store.ShardDamaged as e:
            log(f"{e}; its files are embedded again")
            os.remove(path)
            continue
        if str(z.get("identity")) != identity:
            log(f"{path}: made with other settings than this run; left out of the output")
            continue
        for i, (k, st) in enumerate(zip(z["keys"], z.get("stamps", [""] * len(z["keys"])))):
            latest[str(k)] = (path, i, str(st))
    return latest


def _build(root: str, identity: str, npz: str, sidecar: str, keys: list[str], spec, settings: dict, result: Result,
           log) -> int:
    """OUT.npz (requested files first, in order, then the store's others) and OUT.json, both atomically."""
    latest = _index(root, identity, log=lambda m: None)
    order = list(dict.fromkeys([k for k in keys if k in latest] + sorted(latest, key=lambda k: latest[k][:2])))
    if not order:
        return 0
    if os.path.exists(npz):
        try:
            with np.load(npz) as z:
                z.files
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            log(f"{npz}: damaged ({type(e).__name__}); rebuilding it from {root}")
    read = functools.lru_cache(maxsize=4)(store.read_shard)
    hop = frontend.example_hop_seconds(frontend.config_of(spec.frontend))  # the run's hop (hop_s)
    with atomic.replacing(npz, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        rows = {}
        for k in order:
            path, i, _ = latest[k]
            e = read(path).embeddings[i]
            rows[k] = e.shape[0]
            with zf.open(k + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.ascontiguousarray(e), allow_pickle=False)
    meta = {**settings, spec_lib.KEY: spec.to_dict(), "complete": result.complete, "files": order,
            "requested": keys, "errors": {s.path: s.reason for s in result.skipped},
            "skipped": [s.to_dict() for s in result.skipped], "store": root,
            "warnings": [c.to_dict() for c in result.warnings],
            "hop_s": hop, "window_s": frontend.example_seconds(),
            "start_s": {k: [round(j * hop, 6) for j in range(n)] for k, n in rows.items()}}
    atomic.write_json(sidecar, meta)
    return len(order)
