"""The AudioSet genre experiment, end to end from the release files (no weights, no audio).

    python experiments/audioset_genres.py --manual-dir DIR --out results/audioset [--tasks genre25,genre8,multilabel25]
        [--classifiers ...] [--jobs N] [--members 5] [--ship vggish_jax/assets/audioset_genres]

DIR is the unpacked AudioSet v1 embeddings release (bal_train/, eval/) with ontology.json and
class_labels_indices.csv beside them. For each task it writes the release's segments into an embeddings store
(OUT/stores/<task>, the layout `vggish-jax extract` writes), runs the comparison table on it (OUT/<task>/:
table.md, table.json, plots, the trained JAX heads), and finally OUT/report.md with every task's best model
(chosen on validation) next to the baselines quoted in issue 19. `--ship DIR` copies genre25's JAX-frames
head (npz + json) to DIR with provenance.json (data, split sizes, its validation and test scores). Tasks:
  genre25        single-label, AudioSet's 25 top-level music genres
  genre8         single-label, Pop, Hip hop, Rock, Country, Folk, Jazz, Classical, Electronic
  multilabel25   multi-label, the 25 genres (mAP, ROC-AUC)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import platform
import sys
import time

from vggish_jax import atomic
from vggish_jax.classify import compare as cc, frame_head
from vggish_jax.pipeline import store
from vggish_jax.pipeline.sources.audioset import AudioSetSource

GENRES_8 = ("Pop music", "Hip hop music", "Rock music", "Country", "Folk music", "Jazz", "Classical music",
            "Electronic music")
TASKS = {"genre25": ("music_genre", None), "genre8": ("music_genre", GENRES_8),
         "multilabel25": ("music_genre_multilabel", None)}
# Issue 19's baselines on the eval split: standardised mean-pooled uint8 embeddings, RBF SVC.
BASELINES = {"genre25": 0.572, "genre8": 0.775}
SHARD = 2048


def write_store(src: AudioSetSource, root: str) -> dict:
    """The source's clips in the embeddings-store layout (what `extract --dataset audioset` writes)."""
    sizes = src.splits()
    for split, n in sizes.items():
        for k, start in enumerate(range(0, max(n, 1), SHARD)):
            clips = list(src.clips(split, range(start, min(n, start + SHARD))))
            store.write_shard(store.shard_path(root, split, k), [c.index for c in clips], [c.label for c in clips],
                              [c.data for c in clips])
    info = {"dataset": f"audioset_v1/{src.task_name}", "label_names": src.label_names, "multilabel": src.multilabel,
            "final_relu": False, "postprocess": True, "embedding_spec": src.spec.to_dict(), "source": src.identity(),
            "splits": {s: {"clips": n} for s, n in sizes.items()},
            "skipped": [s.to_dict() for s in src.skipped()], "complete": True}
    store.write_info(root, info)
    return info


def cache_cells(directory: str) -> None:
    """Memoise compare's sklearn cells on disk (joblib.Memory, keyed by the cell's data, classifier and seed), so
    a rerun that changes only the JAX heads does not refit the slow grid (HGB, LinearSVC on 1280-d frames)."""
    from joblib import Memory

    cc.run_cell = Memory(directory, verbose=0).cache(cc.run_cell)


def run(manual_dir: str, out: str, tasks, classifiers, feature_sets, jobs: int, members: int, log) -> dict:
    results = {}
    for task in tasks:
        name, classes = TASKS[task]
        t0 = time.perf_counter()
        src = AudioSetSource(manual_dir, name, classes)
        root = os.path.join(out, "stores", task)
        info = write_store(src, root)
        for s in src.skipped():
            log(s.line())
        log(f"{task}: {info['splits']} clips")
        cfg = frame_head.FrameHeadConfig(members=members)
        results[task] = cc.compare(root, os.path.join(out, task), feature_sets=feature_sets, classifiers=classifiers,
                                   jobs=jobs, frame_head_config=cfg, log=log)
        log(f"{task}: done in {time.perf_counter() - t0:.0f} s; best {results[task]['best']}")
    atomic.write_text(os.path.join(out, "report.md"), report(results))
    return results


def ship_head(task_out: str, dest: str, task: str = "genre25") -> dict:
    """Copy a task's JAX-frames head to `dest` with its provenance and scores from the task's table."""
    with open(os.path.join(task_out, "table.json")) as f:
        table = json.load(f)
    cell = next(c for c in table["cells"] if c["classifier"] == "JAX-frames")
    os.makedirs(dest, exist_ok=True)
    for name in ("head.npz", "head.json"):
        shutil.copy(os.path.join(task_out, "head_frames", name), os.path.join(dest, name))
    keys = ("accuracy", "macro_f1") if not table["multilabel"] else ("mAP", "roc_auc")
    prov = {"task": task, "what": "JAX-frames head (vggish_jax.classify.frame_head) on AudioSet's 25 top-level "
                                  "music genres, single-label segments",
            "data": "AudioSet v1 released embeddings (Google, CC BY 4.0): balanced-train split by video id into "
                    "train/validation; test = eval",
            "made_by": "experiments/audioset_genres.py", "split_sizes": table["split_sizes"],
            "validation": {k: cell[f"validation_{k}"] for k in keys}, "test": {k: cell[f"test_{k}"] for k in keys},
            "best_on_validation_in_table": table["best"], "machine": table["machine"], "versions": table["versions"],
            "note": "trained on Google's production-pipeline embeddings; converted public weights reproduce them "
                    "closely but not exactly (tensorflow/models#9772)"}
    atomic.write_json(os.path.join(dest, "provenance.json"), prov, indent=2)
    return prov


def report(results: dict) -> str:
    lines = ["# AudioSet music genres from the released VGGish embeddings", "",
             f"Machine: {platform.platform()}, {os.cpu_count()} CPUs. Train/validation: balanced-train split by "
             f"video id; test: eval. Best model chosen on validation only; the test split is scored once per model.", "",
             "| task | clips (train/val/test) | best on validation | validation | test | test (2nd metric) | "
             "baseline (issue 19) |", "|---|---|---|---|---|---|---|"]
    for task, r in results.items():
        b, sz = r["best"], r["split_sizes"]
        m1, m2 = ("mAP", "roc_auc") if r["multilabel"] else ("accuracy", "macro_f1")
        lines.append(f"| {task} | {sz['train']}/{sz['validation']}/{sz['test']} | {b['classifier']} on "
                     f"{b['feature_set']} | {m1} {b['validation_' + m1]:.4f} | {m1} {b['test_' + m1]:.4f} | "
                     f"{m2.replace('_', '-')} {b['test_' + m2]:.4f} | "
                     f"{BASELINES.get(task, '-') if task in BASELINES else '-'} |")
    lines += ["", "Per-task tables: `<task>/table.md`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manual-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--classifiers", default=",".join(cc.PAPER_CLASSIFIERS + cc.EXTRA_CLASSIFIERS))
    p.add_argument("--features", default="embedding,embedding+pca128,mean_std,frames")
    p.add_argument("--jobs", type=int, default=-1)
    p.add_argument("--members", type=int, default=5, help="networks in the JAX-frames ensemble")
    p.add_argument("--ship", help="copy genre25's JAX-frames head here with provenance.json")
    p.add_argument("--cache", help="folder memoising the sklearn cells across runs (identical data only)")
    a = p.parse_args(argv)
    if a.cache:
        cache_cells(a.cache)
    tasks = [t for t in a.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        p.error(f"unknown tasks {unknown}; choose from {', '.join(TASKS)}")
    run(a.manual_dir, a.out, tasks, [c for c in a.classifiers.split(",") if c], [f for f in a.features.split(",") if f],
        a.jobs, a.members, lambda m: print(m, file=sys.stderr, flush=True))
    if a.ship:
        ship_head(os.path.join(a.out, "genre25"), a.ship)
    print(open(os.path.join(a.out, "report.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
