"""Benchmark: clips/s of the Beam runner with 1 and 2 local workers vs the local runner (the `beam` section of
`python -m benchmarks`)."""
from __future__ import annotations

import os
import time

import numpy as np

from vggish_jax.pipeline import store


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

    from vggish_jax.models.vggish import modeling, params
    from vggish_jax.pipeline import extract as ex

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
        params.save(weights, modeling.random(0), metadata={"source": "random", "seed": 0})
        source = ex.open_source("fma/small", data_dir=os.path.join(d, "data"), manual_dir=manual, from_audio=True)
        model = ex.load_model(weights)
        common = dict(weights_dir=weights, batch_size=64, shard_size=shard, log=lambda m: None)
        ref = None
        for r in range(repeats):
            for v in variants[r % len(variants):] + variants[:r % len(variants)]:
                dest = os.path.join(d, f"{v}-{r}")
                t0 = time.perf_counter()
                if v == "single_process":
                    ex.extract(source, dest, model, ex.ExtractSettings(workers=1, progress=False, **common))
                else:
                    k = int(v.split("_")[1])
                    run = ex.extract(source, dest, model, ex.ExtractSettings(beam=ex.BeamSettings("direct", k),
                                                                             **common))
                    pipeline[v].append(run.seconds)
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
