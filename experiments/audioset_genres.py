"""The AudioSet genre experiment, end to end from the release files (no weights, no audio).

    python experiments/audioset_genres.py --manual-dir DIR --out results/audioset [--tasks genre25,genre8,multilabel25]
        [--classifiers ...] [--jobs N] [--members 5] [--pooling mean] [--label-smoothing 0] [--extra] [--cv 5] [--finalists 3]
        [--cache DIR] [--ship vggish_jax/assets/audioset_genres]

DIR is the unpacked AudioSet v1 embeddings release (bal_train/, eval/) with ontology.json and
class_labels_indices.csv beside them. For each task it writes the release's segments into an embeddings store
through the extraction core (OUT/stores/<task>, as `vggish-jax extract --dataset audioset`), runs the comparison
table on it (OUT/<task>/: table.md, table.json, plots, the trained JAX heads) and finally OUT/report.md next to the baselines quoted in
issue 19. `--extra` gives JAX-frames extra training clips on single-label tasks: balanced-train segments of two or
more genres with soft targets (never from validation videos; test untouched). Off by default: on grouped CV
within balanced-train it measured worse (README).

Selection, all without the test split, is compare's (vggish_jax.classify.selection, selection "cv"): the table
ranks every model on validation; then (single-label, `--cv K`) the `--finalists` best on validation are scored
by grouped (video id) stratified K-fold over train + validation, the JAX frame head trained in each fold for
the epochs validation chose (what its refit does). The CV winner is refitted on train + validation and the
test split scored once: that is the task's result ("final" in report.md / OUT/<task>/final.json; with --cv 0
the validation winner, refitted). `--ship DIR` copies genre25's
final JAX-frames head (refitted) to DIR with provenance.json (data, split sizes, how it was selected, scores).
Tasks:
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
from vggish_jax.classify import compare as cc, frame_head, heads, tables
from vggish_jax.pipeline import extract, store
from vggish_jax.pipeline.sources.audioset import AudioSetSource

GENRES_8 = ("Pop music", "Hip hop music", "Rock music", "Country", "Folk music", "Jazz", "Classical music",
            "Electronic music")
TASKS = {"genre25": ("music_genre", None), "genre8": ("music_genre", GENRES_8),
         "multilabel25": ("music_genre_multilabel", None)}
# Issue 19's baselines on the eval split: standardised mean-pooled uint8 embeddings, RBF SVC.
BASELINES = {"genre25": 0.572, "genre8": 0.775}
TARGETS = {"genre25": 0.62, "genre8": 0.82}
SHARD = 2048


def write_store(src: AudioSetSource, root: str, log) -> dict:
    """The source's clips in an embeddings store through the one extraction core (what `vggish-jax extract
    --dataset audioset` runs; a rerun resumes); returns its info.json."""
    extract.extract(src, root, None, extract.ExtractSettings(shard_size=SHARD, progress=False, log=log))
    return store.read_info(root)


def cache_cells(directory: str) -> None:
    """Memoise compare's sklearn cells on disk (joblib.Memory, keyed by the cell's data, classifier and seed), so
    a rerun that changes only the JAX heads does not refit the slow grid (HGB, LinearSVC on 1280-d frames)."""
    from joblib import Memory

    cc.run_cell = Memory(directory, verbose=0).cache(cc.run_cell)


def key(cell: dict) -> tuple[str, str]:
    return cell["classifier"], cell["feature_set"]


def final_of(root: str, task_out: str, table: dict, extra, seed: int, log) -> dict:
    """final.json: the model compare's selection chose (vggish_jax.classify.selection: here "cv", grouped by
    video id, or "validation") with its refit on train + validation, and, when another model won, the JAX-frames
    head refitted too (predict needs this kind of head, so `--ship` copies it either way)."""
    sel = table["selection"]
    final = {"selected_by": sel["selected_by"], "classifier": sel["classifier"], "feature_set": sel["feature_set"],
             "validation_score": sel["validation_score"], "cv": sel["cv"], "refit": table["refit"],
             "extra_train_clips": len(extra[0]) if extra else 0}
    frames_dir = os.path.join(task_out, "head_frames")
    if sel["classifier"] != "JAX-frames" and os.path.isdir(frames_dir):
        data = cc.build_features({s: store.load_split(root, s) for s in cc.SPLITS})
        cell = {"classifier": "JAX-frames", "feature_set": "frames"}
        fitted, head = cc.refit_best(cell, data, {"head_frames": heads.load_head(frames_dir)}, table["label_names"],
                                     seed, extra, log)
        fitted.pop("test_predictions", None)
        frame_head.save(os.path.join(task_out, "head_frames_refit"), head)
        final["jax_frames_refit"] = fitted
    atomic.write_json(os.path.join(task_out, "final.json"), final, indent=2)
    return final


def run(manual_dir: str, out: str, tasks, classifiers, feature_sets, jobs: int, cfg: frame_head.FrameHeadConfig,
        log, use_extra: bool = False, cv: int = 5, n_finalists: int = 3) -> dict:
    results = {}
    for task in tasks:
        name, classes = TASKS[task]
        t0 = time.perf_counter()
        src = AudioSetSource(manual_dir, name, classes)
        root = os.path.join(out, "stores", task)
        info = write_store(src, root, log)
        for s in src.skipped():
            log(s.line())
        extra = src.extra_train() if use_extra and not src.multilabel else None
        log(f"{task}: {info['num_clips']} clips" + (f", {len(extra[0])} extra soft-target clips" if extra else ""))
        task_out = os.path.join(out, task)
        settings = cc.CompareSettings(feature_sets=feature_sets, classifiers=classifiers, jobs=jobs, frame_head=cfg,
                                      refit=True, extra_train=extra, selection="cv" if cv > 1 else "validation",
                                      finalists=n_finalists, selection_folds=max(cv, 2))
        table = cc.compare(root, task_out, settings, log=log)
        table["final"] = final_of(root, task_out, table, extra, cfg.seed, log)
        results[task] = table
        log(f"{task}: done in {time.perf_counter() - t0:.0f} s; final {table['final']['classifier']} on "
            f"{table['final']['feature_set']}: {table['final']['refit']}")
    atomic.write_text(os.path.join(out, "report.md"), report(results))
    return results


def ship_head(task_out: str, dest: str, task: str = "genre25") -> dict:
    """Copy a task's JAX-frames head refitted on train + validation to `dest` with its provenance (and whether
    the task's selection chose it: predict needs this kind of head, so it ships even when another model won)."""
    with open(os.path.join(task_out, "table.json")) as f:
        table = json.load(f)
    with open(os.path.join(task_out, "final.json")) as f:
        final = json.load(f)
    selected = final["classifier"] == "JAX-frames"
    refit = final["refit"] if selected else final["jax_frames_refit"]
    os.makedirs(dest, exist_ok=True)
    for name in ("head.npz", "head.json"):
        shutil.copy(os.path.join(task_out, "head_frames_refit", name), os.path.join(dest, name))
    keys = tables.metric_names(table["multilabel"])
    cell = next(c for c in table["cells"] if c["classifier"] == "JAX-frames")
    prov = {"task": task, "what": "JAX-frames head (vggish_jax.classify.frame_head) on AudioSet's 25 top-level "
                                  "music genres, single-label segments, refitted on train + validation",
            "data": "AudioSet v1 released embeddings (Google, CC BY 4.0): balanced-train split by video id into "
                    "train/validation" + (" (plus its segments of two or more genres as soft-target training clips)"
                                          if final["extra_train_clips"] else "") + "; test = eval",
            "made_by": "experiments/audioset_genres.py", "split_sizes": table["split_sizes"],
            "extra_train_clips": final["extra_train_clips"], "selected_by": final["selected_by"],
            "cv": final["cv"], "selected": selected,
            "selected_model": f"{final['classifier']} on {final['feature_set']}",
            "validation": {k: cell[f"validation_{k}"] for k in keys},
            "test": {k: refit[f"test_{k}"] for k in keys},
            "test_before_refit": {k: cell[f"test_{k}"] for k in keys},
            "best_on_validation_in_table": table["best"], "machine": table["machine"], "versions": table["versions"],
            "note": "trained on Google's production-pipeline embeddings; converted public weights reproduce them "
                    "closely but not exactly (tensorflow/models#9772)"}
    atomic.write_json(os.path.join(dest, "provenance.json"), prov, indent=2)
    return prov


def report(results: dict) -> str:
    lines = ["# AudioSet music genres from the released VGGish embeddings", "",
             f"Machine: {platform.platform()}, {os.cpu_count()} CPUs. Train/validation: balanced-train split by "
             f"video id; test: eval. Selection never sees the "
             f"test split: the table's best on validation, then grouped CV over train + validation among the "
             f"validation finalists; the final model is refitted on train + validation and scored on test once.", "",
             "| task | clips train/val/test (+extra) | best on validation: val / test | final model (selected by) | "
             "CV | final test | baseline (issue 19) | target |", "|---|---|---|---|---|---|---|---|"]
    for task, r in results.items():
        b, sz, f = r["best"], r["split_sizes"], r["final"]
        m1, m2 = tables.metric_names(r["multilabel"])
        cv = next((c for c in f["cv"] if key(c) == key(f)), None)
        cv_text = f"{cv['cv_mean']:.4f} +- {cv['cv_std']:.4f}" if cv else "-"
        lines.append(f"| {task} | {sz['train']}/{sz['validation']}/{sz['test']} (+{f['extra_train_clips']}) | "
                     f"{b['classifier']} on {b['feature_set']}: {b['validation_' + m1]:.4f} / {b['test_' + m1]:.4f} | "
                     f"{f['classifier']} on {f['feature_set']} ({'CV' if f['cv'] else 'validation'}) | "
                     f"{cv_text} | "
                     f"{m1} {f['refit']['test_' + m1]:.4f}, {m2.replace('_', '-')} {f['refit']['test_' + m2]:.4f} | "
                     f"{BASELINES.get(task, '-')} | {TARGETS.get(task, '-')} |")
    lines += ["", "Per-task tables: `<task>/table.md`; selection and refit: `<task>/final.json`."]
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
    p.add_argument("--pooling", default="mean", choices=frame_head.POOLINGS, help="JAX-frames' pooling over frames")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="JAX-frames' label smoothing (single-label)")
    p.add_argument("--extra", action="store_true", help="add the soft-target extra clips to JAX-frames' training")
    p.add_argument("--cv", type=int, default=5, help="folds for the final selection among the finalists (0: none)")
    p.add_argument("--finalists", type=int, default=3, help="models best on validation that CV compares")
    p.add_argument("--ship", help="copy genre25's final JAX-frames head here with provenance.json")
    p.add_argument("--cache", help="folder memoising the sklearn cells across runs (identical data only)")
    a = p.parse_args(argv)
    if a.cache:
        cache_cells(a.cache)
    tasks = [t for t in a.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        p.error(f"unknown tasks {unknown}; choose from {', '.join(TASKS)}")
    if a.ship and not ("genre25" in tasks and "JAX-frames" in a.classifiers.split(",") and "frames" in a.features.split(",")):
        p.error("--ship copies genre25's JAX-frames head: keep genre25 in --tasks, JAX-frames in --classifiers "
                "and frames in --features")
    cfg = frame_head.FrameHeadConfig(members=a.members, pooling=a.pooling, label_smoothing=a.label_smoothing)
    run(a.manual_dir, a.out, tasks, [c for c in a.classifiers.split(",") if c], [f for f in a.features.split(",") if f],
        a.jobs, cfg, lambda m: print(m, file=sys.stderr, flush=True), a.extra, a.cv, a.finalists)
    if a.ship:
        ship_head(os.path.join(a.out, "genre25"), a.ship)
    print(open(os.path.join(a.out, "report.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
