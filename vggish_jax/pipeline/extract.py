"""Embed every clip of a dataset into a store (vggish_jax.pipeline.store), resumably: the local runner.

`extract(dataset, ...)` opens the source (`sources.fma` for 'fma/...', `sources.folder` for a folder) and
the model, builds the core's Job and runs its shards here, on every local device, with decode worker
processes that import no jax; with `beam_runner` it hands the same Job to `pipeline.beam_extract`.

Several processes (`jax.distributed` initialised, or `process_index`/`process_count` given) each run their
round-robin part of the plan (`core.assign`) and process 0 completes info.json once every shard of every
process exists; rerunning the same command on any number of processes computes only what is missing.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from tqdm import tqdm

from vggish_jax.pipeline import core, store
from vggish_jax.pipeline.core import Summary, assign, plan  # noqa: F401  (the runners' public names)

load = store.load  # one split of a finished store


def open_source(dataset: str | None, *, data_dir: str | None = None, manual_dir: str | None = None,
                from_audio: bool = False, workers: int | None = None, download: bool = False,
                beam_runner=None, beam_options=None, labels: str | None = None, task: str = "music_genre",
                classes: list[str] | None = None, split: str | None = None):
    """The source named by --dataset: an FMA config (its TFDS build, or its mp3s), a folder of audio files
    (with `split` 'gtzan-filtered', a GTZAN folder split by the fault-filtered lists) or 'audioset' (the
    released embeddings under `manual_dir`, labelled for `task`); or, with `labels`, a CSV of labelled files."""
    from vggish_jax.pipeline.sources import fma as fma_source, folder, gtzan, labels_csv

    if split is not None:
        if split != gtzan.SPLIT:
            raise ValueError(f"--split {split}: the one named split is {gtzan.SPLIT} (for a GTZAN folder)")
        if labels is not None or not dataset or dataset.startswith("fma/") or not os.path.isdir(dataset):
            raise ValueError(f"--split {split} applies to a folder with GTZAN's layout (--dataset GENRES_DIR); "
                             f"{labels or dataset} is not one: drop --split")
        return gtzan.GtzanFiltered(folder.Folder(dataset))
    if labels is not None:
        return labels_csv.LabelsCsv(labels)
    if dataset == "audioset":
        from vggish_jax.pipeline.sources.audioset import AudioSetSource

        if manual_dir is None:
            raise ValueError("--dataset audioset needs --manual-dir: the folder of the unpacked release "
                             "(bal_train/, eval/, ontology.json)")
        return AudioSetSource(manual_dir, task, classes)
    if not dataset.startswith("fma/") and os.path.isdir(dataset):
        return folder.Folder(dataset)
    if not fma_source.is_fma(dataset):
        raise FileNotFoundError(f"{dataset}: no such folder; --dataset is an FMA config (fma/small, ...) or a "
                                f"folder of audio files")
    if data_dir is None:
        raise ValueError(f"{dataset}: an FMA dataset needs --data-dir (where its TFDS build lives or will be built)")
    data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
    if manual_dir is not None:
        manual_dir = os.path.abspath(os.path.expanduser(os.fspath(manual_dir)))
    if from_audio:
        return fma_source.FmaAudio(dataset, data_dir=data_dir, manual_dir=manual_dir, download=download)
    return fma_source.FmaTfds(dataset, data_dir=data_dir, manual_dir=manual_dir, workers=workers, download=download,
                              beam_runner=beam_runner, beam_options=beam_options)


def make_job(out: str, source, model, *, postprocess: bool, shard_size: int, weights_dir: str, dataset: str,
             workers: int = 0, processes: bool = True, pad: bool = False) -> core.Job:
    """The core's Job for `source` embedded by `model` (an Embedder) into the store `out`."""
    ident = source.identity()
    record = {"dataset": dataset, "source": ident["source"], "weights": weights_dir,
              "weights_metadata": model.metadata}
    spec = core.rows_spec(model.spec, source.payload, postprocess)
    return core.Job(os.path.abspath(out), source, spec, shard_size, record=record, pad=pad, workers=workers, processes=processes,
                    spec_from=f"weights {weights_dir}")


def extract(dataset: str = "fma/small", *, out: str, weights, data_dir: str | None = None,
            manual_dir: str | None = None, batch_size: int = 64, shard_size: int = 128, workers: int | None = None,
            final_relu: bool | None = None, postprocess: bool = False, dtype: str = "float32",
            from_audio: bool = False, download: bool = False, precision: str = "float32",
            process_index: int | None = None, process_count: int | None = None, progress: bool = True,
            beam_runner: str | None = None, beam_workers: int = 2, beam_options=None, labels: str | None = None,
            task: str = "music_genre", classes: list[str] | None = None, split: str | None = None,
            resample: str = "auto", source=None, log: Callable[[str], None] | None = None) -> Summary:
    """Embed all splits of `dataset` (an FMA config or a folder of audio files) into `out`; resume if it has shards.

    weights: a weights directory (`vggish-jax convert`) or an Embedder (local runs). batch_size: examples per
    device call (an Embedder given as `weights` keeps its own). precision: the device frontend's, for
    waveform sources ("float64" is within 1e-5 of the NumPy oracle). workers: decode processes (default:
    CPUs - 1). process_index/process_count default to jax's. beam_runner: run the shards as an Apache Beam
    pipeline instead ('direct' = `beam_workers` local processes; see `beam_runner.make`). labels: a CSV of
    labelled files (path,label[,split][,group]) to embed instead of `dataset`. task, classes: for
    dataset='audioset' ('music_genre', 'music_genre_multilabel'; a subset of the 25 top-level genres). split:
    'gtzan-filtered' for a GTZAN folder (train/validation/test from GTZAN's fault-filtered lists).
    resample: where audio files not at 16 kHz are resampled ('auto', 'host', 'device': `pipeline.placement`).
    source: a Source already opened by the caller (who keeps it for other uses), used instead of opening
    `dataset`, which then only names it in info.json.
    """
    from vggish_jax.datasets import decode
    from vggish_jax.pipeline.embed import Embedder, load_pretrained

    log = log or (lambda m: print(m, file=sys.stderr))
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    beam = beam_runner is not None or beam_options is not None
    if beam:
        from vggish_jax.pipeline import beam_extract, beam_runner as runners

        runner, options = runners.make(beam_runner, beam_workers, beam_options)
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise ValueError("the Beam pipeline loads the weights on every worker: pass a weights directory, not "
                             "an Embedder")
    workers = decode.default_workers() if workers is None else workers
    load_kwargs = dict(final_relu=final_relu, dtype=dtype, batch_size=batch_size, precision=precision,
                       resample=resample)
    if weights is None:  # enough for a source of stored embeddings (payload 'embedding'): no model runs
        from vggish_jax.pipeline.sources.fma import is_fma

        # Audio sources known up front (a given `source` is checked once open, below, like any other).
        if source is None and (labels is not None or is_fma(dataset) or os.path.isdir(dataset)):
            raise ValueError(f"{labels or dataset}: holds audio, so embedding it needs --weights (a folder written "
                             f"by `vggish-jax convert`)")
        model, weights_dir = None, None
    elif isinstance(weights, Embedder):
        model, weights_dir = weights, weights.weights_dir or "<in-memory Embedder>"
    else:
        weights_dir = os.path.abspath(os.fspath(weights))
        model = load_pretrained(weights_dir, **load_kwargs)  # bad weights fail here, in one line
    if postprocess and model is not None and model.pca is None:  # before a (long) dataset build
        raise ValueError(f"{weights_dir}: these weights have no PCA params, so --postprocess is impossible; "
                         f"convert them with --torch-pca/--tf-pca or drop --postprocess")
    source = source or open_source(dataset, data_dir=data_dir, manual_dir=manual_dir, from_audio=from_audio, workers=workers,
                         download=download, labels=labels, task=task, classes=classes, split=split,
                         **(dict(beam_runner=runner, beam_options=options) if beam else {}))
    if hasattr(source, "describe"):
        log(source.describe())
    dataset = getattr(source, "folder", None) or getattr(source, "path", None) or dataset
    if source.payload == "embedding":
        model = weights_dir = None
        job = core.Job(os.path.abspath(out), source, source.spec, shard_size,
                       record={"dataset": dataset, "source": source.identity()["source"]},
                       spec_from=f"the {dataset} source")
    elif model is None:
        raise ValueError(f"{dataset}: holds audio, so embedding it needs --weights (a folder written by "
                         f"`vggish-jax convert`)")
    else:
        job = make_job(out, source, model, postprocess=postprocess, shard_size=shard_size, weights_dir=weights_dir,
                       dataset=dataset, workers=2 if beam else workers, processes=not beam)  # Beam: threads
    if getattr(source, "groups", None) and any(g for gs in source.groups.values() for g in gs):
        job.record["groups"] = source.groups  # per split, by clip position (= track_ids)
    if beam:
        load_kwargs["final_relu"] = getattr(model, "final_relu", final_relu)
        del model  # the workers load their own
        return beam_extract.run(job, weights_dir, load_kwargs, runner, options, log=log)
    return run_local(job, model, process_index=process_index, process_count=process_count, progress=progress,
                     log=log)


def run_local(job: core.Job, model, *, process_index: int | None = None, process_count: int | None = None,
              progress: bool = True, log: Callable[[str], None] = print) -> Summary:
    """Run this process's shards of `job` here; process 0 completes info.json when every shard exists."""
    import jax

    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    tasks = plan(job.source.splits(), job.shard_size)
    mine = assign(tasks, index, count)
    with store.locked(job.out, index, what=job.name or job.out):
        info = core.open_store(job, write=index == 0, log=log)
        splits = {t.split: [] for t in tasks}
        reused, computed = {s: [] for s in splits}, {s: [] for s in splits}
        todo = []
        for t in mine:
            (reused[t.split].append(t.index) if core.shard_done(job, t, log) else todo.append(t))
        total = sum(len(t.indices) for t in mine)
        left = sum(len(t.indices) for t in todo)
        who = f" (process {index} of {count})" if count > 1 else ""
        devices = getattr(getattr(model, "device", None), "num_devices", 1)
        log(f"extract -> {job.out}{who}: {len(mine) - len(todo)} shards already done, {len(todo)} to compute "
            f"({left} of {total} clips) on {devices} device(s)")
        with tqdm(total=total, initial=total - left, unit="clip", desc="extract", disable=not progress or None,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for t in todo:
                core.run_shard(job, t, model)
                computed[t.split].append(t.index)
                bar.update(len(t.indices))
        done = core.finalize(job, info, log=log) if index == 0 else None
    if done is None:
        if index != 0:
            log(f"extract{who}: my shards are done; process 0 completes {job.out} once every process has finished")
        return Summary(job.out, computed, reused, {}, [], complete=False)
    log(f"extract: done; clips per split {done.num_clips}; {len(done.skipped)} skipped (listed in info.json)")
    return Summary(job.out, computed, reused, done.num_clips, done.skipped, warnings=done.warnings)
