"""Embed every clip of a source into a store (`pipeline.store`), resumably: the local runner.

    summary = extract(open_source("fma/small", data_dir=D), "out_store", VGGish.from_pretrained(W),
                      ExtractSettings(shard_size=128))     # model None for a source of stored embeddings

Shards run here on every local device, decoded by jax-free worker processes (`settings.beam`: the same Job
through `pipeline.beam_extract`). Several processes each run their round-robin part (`core.assign`), meet at
a jax.distributed barrier, and process 0 completes info.json; rerunning after a death computes what is missing.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable

from tqdm import tqdm

from vggish_jax.models.vggish.params import require_pca
from vggish_jax.pipeline import core, store
from vggish_jax.pipeline.core import Summary, assign, plan


@dataclasses.dataclass(frozen=True)
class BeamSettings:
    """Run the shards as an Apache Beam pipeline: `runner` 'direct' (`workers` local processes) or a Beam
    runner name; `options`: Beam pipeline options passed through (see `beam_runner.make`)."""
    runner: str | None = "direct"
    workers: int = 2
    options: str | None = None


@dataclasses.dataclass(frozen=True)
class ExtractSettings:
    """How `extract` runs. The model's own choices (final_relu, dtype) live on the VGGish module.

    postprocess: store PCA + uint8 rows (needs the model's PCA params). shard_size: clips per shard (the
    unit of resumption). batch_size: examples per device call. workers: decode processes (None: CPUs - 1).
    pad: zero-pad clips shorter than one example instead of skipping them. resample: where audio not at
    16 kHz is resampled ('auto', 'host', 'device': `pipeline.placement`). frontend_precision:
    the device frontend's ('float64' is within 1e-5 of the NumPy oracle). hop_s: seconds between rows (a
    multiple of 0.01; 0.96 is VGGish's own, non-overlapping). pad_last: keep each clip's last partial window,
    zero-padded (both recorded in the store's spec; stored log-mel sources take only the defaults).
    weights_dir: the directory the model came from: recorded in info.json, and what each Beam worker loads.
    progress: a progress bar. process_index/process_count: this process's part of a multi-process run
    (default: jax's). beam: run as an Apache Beam pipeline. log: where progress lines go (default stderr).
    """
    postprocess: bool = False
    shard_size: int = 128
    batch_size: int = 64
    workers: int | None = None
    pad: bool = False
    resample: str = "auto"
    frontend_precision: str = "float32"
    hop_s: float = 0.96
    pad_last: bool = False
    weights_dir: str | None = None
    progress: bool = True
    process_index: int | None = None
    process_count: int | None = None
    beam: BeamSettings | None = None
    log: Callable[[str], None] | None = None

    def __post_init__(self):
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError(f"shard_size and batch_size must be >= 1, got {self.shard_size} and {self.batch_size}")
        self.frontend()  # refuses a hop that is not a multiple of the frame hop, before any work

    def frontend(self):
        """The frontend config these settings ask for (hop_s, pad_last)."""
        from vggish_jax.models.vggish import frontend

        return frontend.with_hop(self.hop_s, self.pad_last)


def open_source(dataset: str | os.PathLike | None, *, data_dir: str | None = None, manual_dir: str | None = None,
                from_audio: bool = False, workers: int | None = None, download: bool = False,
                beam_runner=None, beam_options=None, labels: str | None = None, task: str = "music_genre",
                classes: list[str] | None = None, split: str | None = None, on_duplicate: str = "refuse",
                normalize_labels: bool = False):
    """The one way a named dataset becomes a Source: an FMA config (its TFDS build, or with `from_audio` its
    mp3s; beam_runner/options build it with Beam), a folder of audio files (with `split` 'gtzan-filtered', a
    GTZAN folder split by the fault-filtered lists), a labels CSV (path,label[,split][,group]; or `labels`;
    see LabelsCsv), or 'audioset' (the released embeddings under `manual_dir`, labelled for `task`)."""
    from vggish_jax.pipeline.sources import fma as fma_source, folder, gtzan, labels_csv

    dataset = None if dataset is None else os.fspath(dataset)
    if labels is None and dataset and dataset.lower().endswith(".csv") and os.path.isfile(dataset):
        labels = dataset
    if split is not None:
        if split != gtzan.SPLIT:
            raise ValueError(f"--split {split}: the one named split is {gtzan.SPLIT} (for a GTZAN folder)")
        if labels is not None or not dataset or dataset.startswith("fma/") or not os.path.isdir(dataset):
            raise ValueError(f"--split {split} applies to a folder with GTZAN's layout (--dataset GENRES_DIR); "
                             f"{labels or dataset} is not one: drop --split")
        return gtzan.GtzanFiltered(folder.Folder(dataset))
    if labels is not None:
        return labels_csv.LabelsCsv(labels, on_duplicate=on_duplicate, normalize_labels=normalize_labels)
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


def load_model(weights_dir: str | os.PathLike | None, *, final_relu: bool | None = None, dtype: str = "float32",
               postprocess: bool = False, dataset: str | None = None, labels: str | None = None):
    """The VGGish module of `weights_dir` for `extract`, checked before any (long) dataset build: None
    (no weights) only for a dataset that holds embeddings already; PCA params present for `postprocess`."""
    from vggish_jax.pipeline.sources.fma import is_fma

    if weights_dir is None:  # whether the dataset holds audio is known before opening it (an FMA build: hours)
        if labels is not None or dataset and (is_fma(dataset) or os.path.isdir(dataset)
                                              or dataset.lower().endswith(".csv")):
            raise ValueError(f"{labels or dataset}: holds audio, so embedding it needs --weights (a folder written "
                             f"by `vggish-jax convert`)")
        return None
    import jax.numpy as jnp

    from vggish_jax.models.vggish.modeling import VGGish

    weights_dir = os.path.abspath(os.fspath(weights_dir))
    model = VGGish.from_pretrained(weights_dir, final_relu=final_relu, dtype=jnp.dtype(dtype))
    if postprocess:
        require_pca(model.pca, "--postprocess", weights_dir)
    return model


def source_name(source) -> str:
    """How info.json names a source (compare's tables show it): its folder, CSV, FMA config or AudioSet task."""
    for attr in ("folder", "path", "dataset"):
        if getattr(source, attr, None):
            return str(getattr(source, attr))
    task = getattr(source, "task_name", None)
    return f"audioset_v1/{task}" if task else str(source.identity().get("source", "source"))


def extract(source, out: str | os.PathLike, model=None, settings: ExtractSettings | None = None) -> Summary:
    """Embed every split of `source` (a Source, e.g. from `open_source`, or a folder / labels CSV path) with
    `model` (a VGGish module; None for a source of stored embeddings) into the store `out`; resumes a store
    that has shards of the same job and refuses one made differently. `settings`: ExtractSettings."""
    settings = settings or ExtractSettings()
    log = settings.log or (lambda m: print(m, file=sys.stderr))
    source = open_source(source) if isinstance(source, (str, os.PathLike)) else source
    if hasattr(source, "describe"):
        log(source.describe())
    job, embedder = _job(source, os.path.abspath(os.fspath(out)), model, settings)
    if getattr(source, "groups", None) and any(g for gs in source.groups.values() for g in gs):
        job.record["groups"] = source.groups  # per split, by clip position (= track_ids)
    if settings.beam is not None:
        return _run_beam(job, model, settings, log)
    return run_local(job, embedder, process_index=settings.process_index, process_count=settings.process_count,
                     progress=settings.progress, log=log)


def _job(source, out: str, model, settings: ExtractSettings) -> tuple[core.Job, object]:
    """(the core's Job, the Embedder that runs it; None for stored embeddings)."""
    from vggish_jax.datasets import decode
    from vggish_jax.pipeline.device import Embedder

    name = source_name(source)
    if source.payload == "embedding":
        job = core.Job(out, source, source.spec, settings.shard_size, record={"dataset": name,
                       "source": source.identity()["source"]}, spec_from=f"the {name} source")
        return job, None
    if model is None:
        raise ValueError(f"{name}: holds audio, so embedding it needs a model (--weights: a folder written by "
                         f"`vggish-jax convert`)")
    weights_dir = os.path.abspath(settings.weights_dir) if settings.weights_dir else None
    if settings.postprocess:
        require_pca(model.pca, "--postprocess", weights_dir)
    if source.payload == "mel" and (settings.hop_s, settings.pad_last) != (0.96, False):
        raise ValueError(f"{name}: holds log-mel examples already cut every 0.96 s, so hop_s={settings.hop_s} / "
                         f"pad_last={settings.pad_last} cannot apply; extract from its audio, or leave hop_s and "
                         f"pad_last at their defaults (0.96, false)")
    embedder = Embedder(model, batch_size=settings.batch_size, precision=settings.frontend_precision,
                        resample=settings.resample, weights_dir=weights_dir, cfg=settings.frontend(),
                        metadata=store.weights_metadata(weights_dir))
    workers = decode.default_workers() if settings.workers is None else settings.workers
    beam = settings.beam is not None  # Beam: decode threads in its workers
    weights = weights_dir or "<in-memory model>"
    record = {"dataset": name, "source": source.identity()["source"], "weights": weights,
              "weights_metadata": embedder.metadata}
    job = core.Job(out, source, core.rows_spec(embedder.spec, source.payload, settings.postprocess),
                   settings.shard_size, record=record, pad=settings.pad or settings.pad_last,
                   workers=2 if beam else workers, processes=not beam, spec_from=f"weights {weights}")
    return job, embedder


def _run_beam(job: core.Job, model, settings: ExtractSettings, log) -> Summary:
    """The job as an Apache Beam pipeline: every worker loads the weights from settings.weights_dir."""
    import numpy as np

    from vggish_jax.pipeline import beam_extract, beam_runner as runners

    beam = settings.beam
    runner, options = runners.make(beam.runner, beam.workers, beam.options)
    if job.source.payload == "embedding":
        return beam_extract.run(job, None, {}, runner, options, log=log)
    if settings.weights_dir is None:
        raise ValueError("the Beam pipeline loads the weights on every worker: set ExtractSettings(weights_dir=...) "
                         "to the directory the model was loaded from")
    load_kwargs = dict(final_relu=model.final_relu, dtype=np.dtype(model.conv1.dtype).name,
                       batch_size=settings.batch_size, precision=settings.frontend_precision,
                       resample=settings.resample, cfg=settings.frontend())
    return beam_extract.run(job, os.path.abspath(settings.weights_dir), load_kwargs, runner, options, log=log)


def run_local(job: core.Job, model, *, process_index: int | None = None, process_count: int | None = None,
              progress: bool = True, log: Callable[[str], None] = print) -> Summary:
    """Run this process's shards of `job` here; process 0 completes info.json when every shard exists."""
    import jax

    from vggish_jax import distributed

    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    tasks = plan(job.source.splits(), job.shard_size)
    mine = assign(tasks, index, count)
    with store.locked(job.out, index, what=job.name or job.out):
        info = core.open_store(job, write=index == 0, log=log)
        reused, computed = ({t.split: [] for t in tasks} for _ in range(2))
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
        # Every process's shards before process 0 finalizes; one that died or lags past the timeout is named,
        # and the store stays incomplete (finalize says to rerun).
        late = count > 1 and distributed.barrier(f"vggish_jax extract {job.identity_hash[:16]} {job.out}")
        if late:
            log(f"extract: {late}; {job.out} stays incomplete until every process has written its shards")
        done = core.finalize(job, info, log=log) if index == 0 else None
    if done is None:
        if index != 0:
            log(f"extract{who}: my shards are done; process 0 completes {job.out} once every process has finished")
        return Summary(job.out, computed, reused, {}, [], complete=False)
    log(f"extract: done; clips per split {done.num_clips}; {len(done.skipped)} skipped (listed in info.json)")
    return Summary(job.out, computed, reused, done.num_clips, done.skipped, warnings=done.warnings)
