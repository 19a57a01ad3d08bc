"""Embedding extraction as an Apache Beam pipeline: the same shards as `vggish_jax.pipeline.extract`, on many workers.

The unit of work is one shard: a fixed, contiguous range of clips of one split (the single-process plan, so
both write identical `OUT/<split>/shard-NNNNN.npz` files and either can finish the other's run). The driver
lists the shards already on disk and sends only the missing ones to the workers. Each worker builds the
jitted model once (`EmbedShards.setup`), then per shard: reads the TFDS records (stored log-mels, or the
int16 waveforms of fma/*_waveform builds) or decodes the audio (`host.decode_16k`), embeds them with
`extract.embed_clips` (the single-process path, so both give the same embeddings) and writes the shard
atomically with `extract.write_shard` (its skip list first, for audio sources). Bad clips are counted in
Beam counters (`vggish_jax:clips_skipped`, `...:clips_skipped_too_short`, `...:clips_skipped_undecodable`)
and listed with their reason in info.json's skip report.

Sources: an FMA config ('fma/small', ...; from its TFDS build, built with Beam first if missing, or with
`from_audio=True` from the mp3s), or a folder of audio files (split 'all', clip ids = positions in the sorted
file list, which info.json's 'files' records; labels -1).

Workers need the package, the weights directory and the data on storage they can all read (see README,
"Scale out with Apache Beam"). Needs the `beam` extra (apache-beam).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Callable

import apache_beam as beam
import numpy as np

from vggish_jax.audio import AUDIO_EXTENSIONS
from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import beam_runner, extract as single, store

FORMAT_VERSION = single.FORMAT_VERSION  # of info.json: the same layout as vggish_jax.pipeline.extract writes
# Settings that must match between runs writing into the same directory (as in vggish_jax.pipeline.extract).
# For a folder, "files" (the sorted list that numbers the clips): a file added or removed since would shift
# the clip ids, and a resume would mix shards of two numberings.
_SETTINGS = ("dataset", "source", "shard_size", "final_relu", "postprocess", "dtype", "weights", "label_names",
             "frontend_precision", "files")
NAMESPACE = "vggish_jax"


@dataclasses.dataclass(frozen=True)
class Work:
    """What the workers need besides the shard list; plain data, pickled into the pipeline."""
    kind: str  # 'tfds' (read the built dataset's records), 'audio' (decode files)
    weights: str
    final_relu: bool
    dtype: str
    batch_size: int
    postprocess: bool
    out: str
    precision: str = "float32"  # the device frontend's, for waveform sources
    waveforms: bool = True  # tfds: the build stores int16 waveforms (fma/*_waveform), not only log-mels
    dataset: str | None = None  # tfds: the builder name and its data_dir
    data_dir: str | None = None


@dataclasses.dataclass
class Summary:
    out: str
    computed: dict[str, list[int]]  # split -> shards written by this run
    reused: dict[str, list[int]]  # split -> shards found finished on disk
    num_clips: dict[str, int]  # split -> clips embedded (after skips)
    skipped: list[dict]
    counters: dict[str, int]  # the pipeline's Beam counters, 'namespace:name' -> value
    seconds: float  # wall time of the Beam pipeline


def _skip_kind(reason: str) -> str:
    return "too_short" if "shorter than one VGGish example" in reason else "undecodable"


class EmbedShards(beam.DoFn):
    """(split, shard index, items) -> writes that shard; yields (split, index, clips kept or -1 if done before)."""

    COUNTERS = ("shards_written", "shards_already_done", "clips_embedded", "examples_embedded", "clips_skipped",
                "clips_skipped_too_short", "clips_skipped_undecodable")

    def __init__(self, work: Work):
        self.work = work
        self.counters = {n: beam.metrics.Metrics.counter(NAMESPACE, n) for n in self.COUNTERS}

    def setup(self):
        from vggish_jax.pipeline.embed import load_pretrained

        w = self.work
        self.embedder = load_pretrained(w.weights, final_relu=w.final_relu, dtype=w.dtype, batch_size=w.batch_size,
                                        precision=w.precision)
        self.sources = {}

    def _source(self, split):
        if split not in self.sources:
            from vggish_jax.datasets import fma

            self.sources[split] = fma.builder(self.work.dataset, data_dir=self.work.data_dir).as_data_source(split)
        return self.sources[split]

    def _clip(self, split, item):
        """The single-process clip dicts (`extract.record_clip` / `extract.audio_clip`, same decoding)."""
        from vggish_jax.pipeline import host

        if self.work.kind == "tfds":
            return single.record_clip(self._source(split)[item], self.work.waveforms)
        track_id, label, path = item
        return single.audio_clip(split, track_id, label, path, host.decode_16k(path))

    def process(self, unit):
        split, index, items = unit
        w, c = self.work, self.counters
        audio_source = w.kind == "audio"
        if single.shard_finished(w.out, split, index, len(items), audio_source):  # a retried or duplicated unit
            c["shards_already_done"].inc()
            yield split, index, -1
            return
        key = (single.Plan(split, len(items), len(items)), 0)  # this unit's clips, as one shard
        clips = [clip for _, clip in single.embed_clips(((key, self._clip(split, it)) for it in items),
                                                         self.embedder.device, w.batch_size, w.waveforms)]
        kept = [x for x in clips if "emb" in x]
        skipped = [x for x in clips if "emb" not in x]
        for s in skipped:
            c["clips_skipped"].inc()
            c["clips_skipped_" + _skip_kind(s["reason"])].inc()
        c["examples_embedded"].inc(int(sum(x["emb"].shape[0] for x in kept)))
        single.write_shard(w.out, key[0], index, clips, self.embedder, w.postprocess, audio_source)
        c["clips_embedded"].inc(len(kept))
        c["shards_written"].inc()
        yield split, index, len(kept)


# ---- work lists ----

def _fma_tfds(dataset, data_dir, manual_dir, download, runner, options, log):
    from vggish_jax.datasets import fma

    b = fma.builder(dataset, data_dir=data_dir)
    if not b.is_prepared():
        log(f"building {dataset} under {data_dir} with Beam first")
    b = fma.prepare(dataset, data_dir=data_dir, manual_dir=manual_dir, download=download, beam_runner=runner,
                    beam_options=options)
    sources = fma.data_sources(b)
    splits = {s: list(range(len(ds))) for s, ds in sources.items()}
    return splits, fma.label_names(b), fma.skip_report(b), {}, "waveform" in b.info.features


def _fma_audio(dataset, data_dir, manual_dir, download):
    from vggish_jax.datasets import fma, fma_metadata as meta

    config = dataset.split("/", 1)[-1]
    cfg = next((c for c in fma.Fma.BUILDER_CONFIGS if c.name == config), None)
    if cfg is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of "
                         f"{', '.join('fma/' + c.name for c in fma.Fma.BUILDER_CONFIGS)} or an audio folder")
    sources = fma.find_sources(manual_dir, cfg.subset, work_dir=os.path.join(data_dir, "downloads"),
                               download=download)
    names = meta.genre_names(cfg.subset)
    splits, skipped = {}, []
    for split, tracks in meta.select(meta.read_tracks(sources.tracks_csv), cfg.subset).items():
        todo, bad = fma.select_clips(tracks, names, sources.audio_root)
        skipped += [{"track_id": t.track_id, "split": split, "path": p, "reason": r} for t, p, r in bad]
        splits[split] = [(t.track_id, names.index(t.genre_top), p) for t, p in todo]
    return splits, names, skipped, {}


def _is_fma(dataset: str) -> bool:
    from vggish_jax.datasets import fma

    return dataset.startswith("fma/") or dataset in {c.name for c in fma.Fma.BUILDER_CONFIGS}


def audio_files(folder: str) -> list[str]:
    """Audio files under folder (recursively), sorted by their path relative to it."""
    found = []
    for d, _, files in os.walk(folder):
        found += [os.path.join(d, f) for f in files if f.lower().endswith(AUDIO_EXTENSIONS)]
    return sorted(found, key=lambda p: os.path.relpath(p, folder))


def _folder(folder):
    files = audio_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: holds no audio files ({', '.join(AUDIO_EXTENSIONS)}); point --dataset at "
                                f"a folder of audio files or name an FMA config such as fma/small")
    items = [(i, -1, p) for i, p in enumerate(files)]
    return {"all": items}, [], [], {"files": [os.path.relpath(p, folder) for p in files]}


def plan_units(splits: dict[str, list], shard_size: int) -> list[tuple[str, int, tuple]]:
    """(split, shard index, that shard's items) for every shard: contiguous ranges of shard_size items."""
    return [(split, i, tuple(items[i * shard_size:(i + 1) * shard_size]))
            for split, items in splits.items() for i in range(math.ceil(len(items) / shard_size))]


# ---- the pipeline ----

def extract(dataset: str = "fma/small", *, out: str, weights: str, data_dir: str | None = None,
            manual_dir: str | None = None, runner: str | None = "direct", workers: int = 2,
            beam_options: str | list[str] | None = None, batch_size: int = 64, shard_size: int = 128,
            final_relu: bool | None = None, postprocess: bool = False, dtype: str = "float32",
            from_audio: bool = False, download: bool = False, precision: str = "float32",
            log: Callable[[str], None] | None = None) -> Summary:
    """Embed every clip of `dataset` (an FMA config, or a folder of audio files) into `out` with Beam.

    runner/workers/beam_options: see `beam_runner.make` ('direct' = `workers` local processes). weights: a
    weights directory every worker can read. Resumes: shards already in `out` are kept, not recomputed.
    Each shard goes through `extract.embed_clips`, the single-process path: waveform sources (audio files,
    fma/*_waveform builds) through the device frontend at `precision`, stored log-mels straight to the model.
    """
    from vggish_jax.pipeline.embed import load_pretrained

    log = log or (lambda m: print(m, file=sys.stderr))
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError("the Beam pipeline loads the weights on every worker: pass a weights directory, not an "
                         "Embedder")
    weights = os.path.abspath(os.fspath(weights))
    out = os.path.abspath(os.fspath(out))
    runner_obj, options = beam_runner.make(runner, workers, beam_options)
    # Loaded here too: bad weights or a missing PCA fail now, in one line, not on every worker.
    embedder = load_pretrained(weights, final_relu=final_relu, dtype=dtype, batch_size=batch_size,
                               precision=precision)
    if postprocess and embedder.pca is None:
        raise ValueError(f"{weights}: these weights have no PCA params, so --postprocess is impossible; "
                         f"convert them with PCA params or drop --postprocess")

    folder = not _is_fma(dataset)
    if folder and not os.path.isdir(dataset):
        raise FileNotFoundError(f"{dataset}: no such folder; --dataset is an FMA config (fma/small, ...) or a folder "
                                f"of audio files")
    if folder:
        splits, names, skipped_before, extra = _folder(os.path.abspath(dataset))
        kind, source, waveforms = "audio", "folder", True
        dataset = os.path.abspath(dataset)
    else:
        if data_dir is None:
            raise ValueError(f"{dataset}: an FMA dataset needs --data-dir (where its TFDS build lives)")
        data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
        if manual_dir is not None:
            manual_dir = os.path.abspath(os.path.expanduser(os.fspath(manual_dir)))
        if from_audio:
            splits, names, skipped_before, extra = _fma_audio(dataset, data_dir, manual_dir, download)
            kind = source = "audio"
            waveforms = True
        else:
            splits, names, skipped_before, extra, waveforms = _fma_tfds(dataset, data_dir, manual_dir, download,
                                                                        runner_obj, options, log)
            kind = source = "tfds"
    per_shard_skips = kind == "audio"

    spec = embedder.spec.replace(postprocess=postprocess)
    info = {
        "format_version": FORMAT_VERSION, "dataset": dataset, "source": source, "shard_size": shard_size,
        "final_relu": bool(embedder.final_relu), "postprocess": bool(postprocess), "dtype": str(embedder.dtype),
        "weights": weights, "weights_metadata": embedder.metadata, "label_names": list(names),
        "frontend": dataclasses.asdict(frontend.DEFAULT),
        "frontend_precision": single.frontend_precision(embedder.device, waveforms),
        "embedding": "uint8 PCA-quantised" if postprocess else "float32 raw 128-d",
        "embedding_spec": spec.to_dict(), **extra,
    }
    del embedder  # the workers build their own
    _check_compatible(out, info)
    units = plan_units(splits, shard_size)
    info["splits"] = {s: {"candidates": len(items), "num_shards": math.ceil(len(items) / shard_size)}
                      for s, items in splits.items()}
    info.update(complete=False, skipped=skipped_before)
    store.write_info(out, info)

    reused = {s: [] for s in splits}
    todo = []
    for u in units:
        if single.shard_finished(out, u[0], u[1], len(u[2]), per_shard_skips):
            reused[u[0]].append(u[1])
        else:
            todo.append(u)
    log(f"extract {dataset} -> {out} on Beam ({type(runner_obj).__name__}): {len(units) - len(todo)} shards "
        f"already done, {len(todo)} to compute ({sum(len(u[2]) for u in todo)} clips)")

    counters, seconds = {}, 0.0
    if todo:
        work = Work(kind=kind, weights=weights, final_relu=bool(info["final_relu"]), dtype=dtype,
                    batch_size=batch_size, postprocess=postprocess, out=out, precision=precision,
                    waveforms=waveforms,
                    dataset=None if folder else dataset, data_dir=None if folder else data_dir)
        t0 = time.perf_counter()
        p = beam.Pipeline(runner=runner_obj, options=options)
        _ = (p
             | "Shards" >> beam.Create(todo)  # reshuffled: shards spread over the workers
             | "Embed" >> beam.ParDo(EmbedShards(work)))
        try:
            result = p.run()
            result.wait_until_finish()
        except Exception as e:  # Beam wraps worker errors in pages of traceback: one line, then resume advice
            lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
            raise RuntimeError(f"{out}: the Beam pipeline failed ({type(e).__name__}: "
                               f"{lines[-1] if lines else ''}); finished shards are kept: fix the cause and rerun "
                               f"the same command") from e
        seconds = time.perf_counter() - t0
        counters = beam_runner.counters(result)
        log(f"extract {dataset}: Beam counters {dict(sorted(counters.items()))}")

    computed = {s: sorted(i for t, i, _ in todo if t == s) for s in splits}
    missing = [store.shard_path(out, s, i) for s, i, items in units
               if not single.shard_finished(out, s, i, len(items), per_shard_skips)]
    if missing:
        raise RuntimeError(f"{missing[0]}: not written by the pipeline ({len(missing)} shards missing); rerun the "
                           f"same command to compute them")
    skipped = list(skipped_before)
    if per_shard_skips:
        for s, i, _ in units:
            with open(single.skips_path(out, s, i)) as f:
                skipped += json.load(f)
    num_clips = {s: sum(len(store.read_shard(store.shard_path(out, s, i)).track_ids) for t, i, _ in units if t == s)
                 for s in splits}
    info.update(complete=True, skipped=skipped, num_clips=num_clips)
    store.write_info(out, info)
    log(f"extract {dataset}: done; clips per split {num_clips}; {len(skipped)} skipped (listed in info.json)")
    return Summary(out, computed, reused, num_clips, skipped, counters, seconds)


def _check_compatible(out: str, info: dict) -> None:
    if not os.path.exists(os.path.join(out, store.INFO)):
        return
    from vggish_jax import spec as spec_lib

    old = store.read_info(out)
    diff = [k for k in _SETTINGS if old.get(k) != info.get(k)]
    if diff:
        details = ", ".join(_change(k, old.get(k), info.get(k)) for k in diff)
        raise ValueError(f"{out}: holds embeddings made with other settings ({details}); "
                         f"use a new --out directory or delete this one")
    if spec_lib.KEY in old:
        spec_lib.require_compatible(spec_lib.EmbeddingSpec.from_dict(info[spec_lib.KEY]),
                                    spec_lib.read(old, os.path.join(out, store.INFO)),
                                    expected_from="this run", found_from=os.path.join(out, store.INFO))


def _change(key: str, old, new) -> str:
    if isinstance(old, list) and isinstance(new, list):  # a file list: name what changed, not both lists
        added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        return f"{key}: added {added[:3]}{'...' if len(added) > 3 else ''}, removed {removed[:3]}" + \
            ("..." if len(removed) > 3 else "")
    return f"{key}: {old!r} -> {new!r}"


# ---- benchmark ----

def _bench_fma(root: str, n: int, seconds: float) -> str:
    """A minimal fma_small layout: n clips of `seconds` 44.1 kHz stereo mp3 (tone + noise), all in train."""
    import csv

    import soundfile as sf

    from vggish_jax.datasets import fma_metadata as meta

    manual = os.path.join(root, "manual")
    os.makedirs(os.path.join(manual, "fma_metadata"), exist_ok=True)
    with open(os.path.join(manual, "fma_metadata", "tracks.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerows([["", "set", "set", "track"], ["", "split", "subset", "genre_top"], ["track_id", "", "", ""]])
        t = np.arange(int(44100 * seconds)) / 44100
        for i in range(n):
            tid = 2 + i
            w.writerow([tid, "training", "small", meta.SMALL_GENRES[i % 8]])
            path = meta.audio_path(os.path.join(manual, "fma_small"), tid)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            noise = 0.1 * np.random.default_rng(i).standard_normal(t.size)
            x = np.stack([np.sin(2 * np.pi * (220 + 40 * i) * t), noise], 1)
            sf.write(path, (0.3 * x).astype(np.float32), 44100)
    return manual


def bench(quick: bool = False, workers: tuple[int, ...] = (1, 2), repeats: int | None = None) -> dict:
    """Clips/s of the Beam extraction with 1 and 2 local workers vs the single-process `extract --from-audio`.

    Same clips (30-s 44.1 kHz stereo mp3s), same random weights, batch 64, shard 4 clips; every run decodes
    and embeds all clips from a cold start (process start, model load, compile included) into a fresh folder,
    and its embeddings are checked against the single-process ones. The variants take turns, `repeats` rounds
    (rotating who goes first), so a shared machine's load falls on all of them alike; medians are reported.
    """
    import statistics
    import tempfile

    from vggish_jax.models.vggish import params, pretrained
    from vggish_jax.pipeline.extract import extract as single_extract

    n, seconds, shard = (4, 30.0, 2) if quick else (24, 30.0, 4)
    repeats = repeats or (1 if quick else 2)
    out: dict = {"clips": n, "clip_seconds": seconds, "shard_size": shard, "batch_size": 64, "repeats": repeats,
                 "cores": os.cpu_count(), "load_average_before": os.getloadavg()[0]}
    variants = ["single_process"] + [f"beam_{k}_workers" for k in workers]
    walls: dict[str, list[float]] = {v: [] for v in variants}
    pipeline: dict[str, list[float]] = {v: [] for v in variants}
    diffs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        manual = _bench_fma(d, n, seconds)
        weights = os.path.join(d, "weights")
        pretrained.save(weights, params.random(0), metadata={"source": "random", "seed": 0})
        common = dict(data_dir=os.path.join(d, "data"), manual_dir=manual, weights=weights, batch_size=64,
                      shard_size=shard, from_audio=True)
        ref = None
        for r in range(repeats):
            for v in variants[r % len(variants):] + variants[:r % len(variants)]:
                dest = os.path.join(d, f"{v}-{r}")
                t0 = time.perf_counter()
                if v == "single_process":
                    single_extract("fma/small", out=dest, workers=1, progress=False, log=lambda m: None, **common)
                else:
                    k = int(v.split("_")[1])
                    pipeline[v].append(extract("fma/small", out=dest, workers=k, log=lambda m: None, **common).seconds)
                walls[v].append(time.perf_counter() - t0)
                got = store.load_split(dest, "train")
                ref = ref if ref is not None else got
                diffs[v] = max(diffs.get(v, 0.0), max(float(np.abs(a.astype(np.float64) - b).max())
                                                      for a, b in zip(got.embeddings, ref.embeddings)))
    out["load_average_after"] = os.getloadavg()[0]
    for v in variants:
        wall = statistics.median(walls[v])
        out[v] = {"wall_s": wall, "walls_s": walls[v], "clips_per_second": n / wall,
                  "max_abs_diff_vs_others": diffs[v]}
        if pipeline[v]:
            out[v]["pipeline_clips_per_second"] = n / statistics.median(pipeline[v])
    out["single_process"]["decode_workers"] = 1
    for k in workers:
        out[f"beam_{k}_workers_vs_single"] = (out[f"beam_{k}_workers"]["clips_per_second"]
                                              / out["single_process"]["clips_per_second"])
    return out
