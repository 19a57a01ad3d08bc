"""Cross-validated comparison (`compare --cv K`): every cell of the table scored on K held-out folds.

`folds` gives sklearn's StratifiedKFold, or StratifiedGroupKFold when the store records a group per clip
(`info["groups"]`, e.g. an artist from a labels CSV), so no group lands in two folds. Models that early-stop
or are picked on validation (the JAX heads) get an inner validation part carved from each fold's training
part the same way; the sklearn cells fit on the whole training part. A store without train/validation/test
is cross-validated as a whole; a store with a test split is cross-validated on its other splits and its test
split is not used. The best cell is the highest mean held-out score: selected and scored on the same folds,
so its mean is optimistic (the other cells' numbers are fair).
"""
from __future__ import annotations

import os
import platform
import time
import warnings

import numpy as np

from vggish_jax import atomic
from vggish_jax.classify import compare as cc
from vggish_jax.pipeline import store

DEFAULT_K = 5  # when a store has no train/validation/test split
MIN_INNER_PARTS = 4  # the inner validation part is 1/max(K, 4) of a fold's training part


class FoldError(ValueError):
    """K folds cannot be made from these labels/groups; the message is one line and says what to use."""


def _strata(labels: np.ndarray) -> np.ndarray:
    """What the folds stratify on: the class; multi-label: the rarest class a clip carries (-1: none)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels
    counts = labels.sum(0)
    rank = np.where(labels > 0, counts[None, :], np.iinfo(np.int64).max)
    return np.where(labels.any(1), rank.argmin(1), -1)


def _group_ids(groups) -> np.ndarray | None:
    """Groups as strings; a clip without one ('') is a group of its own."""
    if groups is None:
        return None
    return np.asarray([g if g else f"\0clip {i}" for i, g in enumerate(map(str, groups))])


def _splitter(k: int, grouped: bool, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    return (StratifiedGroupKFold if grouped else StratifiedKFold)(n_splits=k, shuffle=True, random_state=seed)


def check(labels, k: int, groups=None, label_names=None) -> None:
    """Refuse, in one line with what to use instead, K folds that cannot each hold out every class."""
    labels = np.asarray(labels)
    if k < 2:
        raise FoldError(f"--cv {k}: cross-validation needs K >= 2 folds")
    if groups is not None:
        n_groups = len(set(_group_ids(groups)))
        if n_groups < k:
            raise FoldError(f"--cv {k} needs at least {k} groups, but the clips come from {n_groups} groups (the "
                            f"labels CSV's group column); use --cv {n_groups} or fewer" if n_groups >= 2 else
                            f"--cv {k} needs at least 2 groups, but every clip is in one group; drop the CSV's "
                            f"group column or give the clips their real groups")
    counts = labels.sum(0) if labels.ndim == 2 else np.bincount(labels[labels >= 0])
    present = [(int(n), c) for c, n in enumerate(counts) if n > 0]
    if not present:
        raise FoldError("no clip has a class label; extract a folder with one subfolder per class, or a --labels CSV")
    n, c = min(present)
    if n < k:
        name = label_names[c] if label_names is not None and c < len(label_names) else c
        fix = f"use --cv {n} or fewer" if n >= 2 else "add clips of it or leave it out of the store"
        raise FoldError(f"--cv {k}: class {name!r} has only {n} clip{'s' * (n != 1)}, fewer than the {k} folds; {fix}")


def folds(labels, k: int, groups=None, seed: int = 0, label_names=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train_idx, test_idx) pairs: stratified by class, and grouped (no group in two folds) when `groups`
    (one per clip; '' = a group of its own) are given. Every clip is held out exactly once."""
    labels = np.asarray(labels)
    check(labels, k, groups, label_names)
    gids = _group_ids(groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer members than n_splits"
        return list(_splitter(k, gids is not None, seed).split(np.zeros(len(labels)), _strata(labels), gids))


def inner_split(labels, k: int, groups=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit_idx, validation_idx) within one fold's training part: one of max(K, 4) parts made as `folds`
    makes them (grouped when `groups` are given, at most one part per group), held out for validation."""
    labels = np.asarray(labels)
    gids = _group_ids(groups)
    parts = max(k, MIN_INNER_PARTS)
    if gids is not None:
        parts = min(parts, len(set(gids)))
    parts = min(parts, len(labels))
    if parts < 2:
        raise FoldError(f"a fold's training part has too few clips or groups ({len(labels)} clips) to hold out "
                        f"a validation part; use fewer folds (--cv)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return next(iter(_splitter(parts, gids is not None, seed).split(np.zeros(len(labels)), _strata(labels),
                                                                         gids)))


def store_splits(root: str, info: dict) -> list[str]:
    """The splits of a store: info.json's, else the folders holding shards."""
    names = list(info.get("splits") or {})
    return names or sorted(d for d in os.listdir(root) if store.shard_paths(root, d))


def pooled_splits(names: list[str]) -> list[str]:
    """The splits cross-validated: all but `test` (left untouched) when the store has one, else all."""
    return [s for s in names if s != "test"] if "test" in names else list(names)


def pooled_groups(info: dict, splits: dict[str, store.Split]) -> np.ndarray | None:
    """The group of every pooled clip (by split, then track_id = position in the source's split), or None."""
    groups = info.get("groups") or {}
    if not any(groups.get(s) for s in splits):
        return None
    return np.asarray([str(groups[s][int(t)]) if groups.get(s) else "" for s, sp in splits.items()
                       for t in sp.track_ids])


def _take(x, idx: np.ndarray):
    return [x[i] for i in idx] if isinstance(x, list) else x[idx]


def pool(data: cc.Data, names: list[str]) -> tuple[np.ndarray | list, np.ndarray]:
    """One feature matrix (or list of frame arrays) and label array over the splits `names`, in order."""
    xs = [data.x[s] for s in names]
    x = [c for part in xs for c in part] if isinstance(xs[0], list) else np.concatenate(xs)
    return x, np.concatenate([data.y[s] for s in names])


def _sklearn_fold(feature_set: str, classifier: str, x, y, train: np.ndarray, test: np.ndarray, seed: int) -> dict:
    """One cell on one fold: fitted on the fold's training part, scored on its held-out part."""
    data = cc.Data({"train": _take(x, train), "test": _take(x, test)}, {"train": y[train], "test": y[test]})
    return cc.run_cell(feature_set, classifier, data, seed, evaluate=("test",))


def _head_fold(classifier: str, x, y, train, test, groups, k, seed, label_names, meta, frame_head_config, log):
    """A JAX head on one fold: trained on the fit part, early-stopped on the inner validation part."""
    fit, val = inner_split(y[train], k, None if groups is None else groups[train], seed)
    fit, val = train[fit], train[val]
    data = cc.Data({"train": _take(x, fit), "validation": _take(x, val), "test": _take(x, test)},
                   {"train": y[fit], "validation": y[val], "test": y[test]})
    if classifier == "JAX-MLP":
        return cc.run_jax_head(data, label_names, seed, meta)[0]
    return cc.run_frame_head(data, label_names, seed, meta, frame_head_config, log)[0]


def _aggregate(feature_set: str, classifier: str, runs: list[dict], metrics: tuple[str, str]) -> dict:
    """Per cell: the per-fold held-out scores, their mean and std (over folds, ddof 0), summed times."""
    cell = {"feature_set": feature_set, "classifier": classifier,
            "fit_seconds": sum(r["fit_seconds"] for r in runs), "wall_seconds": sum(r["wall_seconds"] for r in runs)}
    failed = [r["error"] for r in runs if r.get("error")]
    for m in metrics:
        v = None if failed else [float(r[f"test_{m}"]) for r in runs]
        cell.update({f"{m}_folds": v, f"{m}_mean": None if v is None else float(np.mean(v)),
                     f"{m}_std": None if v is None else float(np.std(v))})
    if failed:
        cell["error"] = f"{len(failed)} of {len(runs)} folds: {failed[0]}"
    return cell


def compare_cv(embeddings_dir: str, out: str, *, k: int, info: dict, complete: bool,
               splits: dict[str, store.Split], data: dict[str, cc.Data], feature_sets, classifiers,
               jobs: int = -1, seed: int = 0, frame_head_config=None, log=print) -> dict:
    """Every cell of the table on K folds of the pooled `splits` (features already built per split in `data`);
    writes table.md, table.json and plots into `out` and returns the report."""
    from joblib import Parallel, delayed

    t_start = time.perf_counter()
    label_names = list(info["label_names"])
    names = list(splits)
    labels = np.concatenate([splits[s].labels for s in names])
    multilabel = labels.ndim == 2
    if not label_names or (not multilabel and (labels < 0).any()):
        raise FoldError(f"{embeddings_dir}: has no class labels (a folder without one subfolder per class?); "
                        f"extract a folder with one subfolder per class, or a --labels CSV")
    groups = pooled_groups(info, splits)
    try:
        fold_list = folds(labels, k, groups, seed, label_names)
    except FoldError as e:
        raise FoldError(f"{embeddings_dir}: {e}") from None
    metrics = ("mAP", "roc_auc") if multilabel else ("accuracy", "macro_f1")
    pooled = {f: pool(data[f], names) for f in feature_sets}
    sk = [c for c in classifiers if c not in cc.JAX_HEADS]
    cells = [(f, c) for f in feature_sets if f != "frames" for c in sk]
    log(f"{k}-fold cross-validation{' grouped by ' + str(len(set(_group_ids(groups)))) + ' groups' if groups is not None else ''}"
        f" of {len(cells)} cells on {len(labels)} clips ({', '.join(names)}), jobs={jobs}")
    flat = Parallel(n_jobs=jobs, verbose=0)(
        delayed(_sklearn_fold)(f, c, *pooled[f], tr, te, seed) for f, c in cells for tr, te in fold_list)
    runs = {fc: flat[i * k:(i + 1) * k] for i, fc in enumerate(cells)}
    spec = store.spec_of(info, os.path.join(embeddings_dir, store.INFO))
    meta = {"final_relu": spec.final_relu, "weights": info.get("weights"), "spec": spec}
    for head, fs in cc.JAX_HEADS.items():
        if head in classifiers and fs in feature_sets and not (head == "JAX-MLP" and multilabel):
            runs[(fs, head)] = [_head_fold(head, *pooled[fs], tr, te, groups, k, seed, label_names, meta,
                                           frame_head_config, log) for tr, te in fold_list]
    results = [_aggregate(f, c, r, metrics) for (f, c), r in runs.items()]
    ok = [r for r in results if not r.get("error")]
    if not ok:
        raise FoldError(f"{embeddings_dir}: every cell failed on some fold (e.g. {results[0].get('error')}); "
                        f"choose other --classifiers/--features")
    best = max(ok, key=lambda r: r[f"{metrics[0]}_mean"])  # selected on the folds that score it: optimistic
    fold_of_clip = np.zeros(len(labels), np.int64)
    for j, (_, te) in enumerate(fold_list):
        fold_of_clip[te] = j
    other = {s: store.load_split(embeddings_dir, s).labels for s in store_splits(embeddings_dir, info)
             if s not in splits}  # only counted, for the class balance over the whole store
    counts = {s: cc.class_counts(y, len(label_names)).tolist()
              for s, y in {**{s: sp.labels for s, sp in splits.items()}, **other}.items()}
    report = {
        "embeddings": os.path.abspath(embeddings_dir), "dataset": info.get("dataset"),
        "extraction_complete": complete, "multilabel": multilabel, "metric": metrics[0],
        "final_relu": info.get("final_relu"), "postprocess": info.get("postprocess"),
        "embedding_spec": spec.to_dict(), "split_sizes": {s: len(splits[s]) for s in names},
        "cv": {"k": k, "seed": seed, "pooled_splits": names, "not_used": {s: len(y) for s, y in other.items()},
               "grouped": groups is not None,
               "groups": None if groups is None else len(set(_group_ids(groups))),
               "fold_sizes": [len(te) for _, te in fold_list], "fold_of_clip": fold_of_clip.tolist(),
               "std": "over folds, ddof 0",
               "inner_validation": f"JAX heads: 1 of max(K, {MIN_INNER_PARTS}) parts of each fold's training part"},
        "label_names": label_names, "seed": seed, "class_counts": counts,
        "feature_sets": list(feature_sets), "classifiers": list(classifiers), "versions": cc._versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()}, "jobs": jobs, "wall_seconds": time.perf_counter() - t_start,
        "best": {k_: best[k_] for k_ in ("feature_set", "classifier", *(f"{m}_{s}" for m in metrics
                                                                       for s in ("mean", "std")))},
        "cells": results,
    }
    os.makedirs(out, exist_ok=True)
    atomic.write_json(os.path.join(out, "table.json"), report)
    atomic.write_text(os.path.join(out, "table.md"), render_markdown(report))
    pred = _pooled_predictions(runs[(best["feature_set"], best["classifier"])], fold_list, len(labels))
    cc._plots(out, {**best, "test_predictions": pred}, labels, label_names, report,
              held_out=f"held out, pooled over {k} folds")
    return report


def _pooled_predictions(runs: list[dict], fold_list, n: int) -> np.ndarray:
    """Each clip's prediction (multi-label: class scores) from the fold that held it out."""
    first = np.asarray(runs[0]["test_predictions"])
    pred = np.zeros((n,) + first.shape[1:], first.dtype if first.ndim == 1 else np.float64)
    for r, (_, te) in zip(runs, fold_list):
        pred[te] = np.asarray(r["test_predictions"])
    return pred


def render_markdown(report: dict) -> str:
    """The split mode's table with "mean ± std" over the held-out folds in each cell."""
    cv = report["cv"]
    m1, m2 = ("mAP", "roc_auc") if report["multilabel"] else ("accuracy", "macro_f1")
    n1, n2 = m1, m2.replace("_", "-")
    fs = report["feature_sets"]
    cells = {(c["feature_set"], c["classifier"]): c for c in report["cells"]}
    b = report["best"]
    how = f"grouped by the store's groups ({cv['groups']} groups, none in two folds)" if cv["grouped"] else "stratified"
    unused = "; ".join(f"the {s} split ({n} clips) is not used" for s, n in cv["not_used"].items())
    lines = [f"# Genre classification: {report['dataset']} (final_relu={report['final_relu']}, "
             f"postprocess={report['postprocess']}), {cv['k']}-fold cross-validation", "",
             f"{cv['k']}-fold cross-validation, {how}, over {' + '.join(cv['pooled_splits'])} "
             f"({sum(cv['fold_sizes'])} clips, folds of {', '.join(map(str, cv['fold_sizes']))}){'; ' + unused if unused else ''}. "
             f"Cells: held-out {n1} / held-out {n2}, mean ± std over the {cv['k']} folds (per-fold scores in "
             f"table.json). Highest mean held-out {n1}: **{b['classifier']} on {b['feature_set']}** "
             f"({n1} {b[m1 + '_mean']:.4f} ± {b[m1 + '_std']:.4f}, {n2} {b[m2 + '_mean']:.4f} ± {b[m2 + '_std']:.4f}).",
             "",
             "With cross-validation the best cell is selected on the same folds that score it, so its mean is "
             "optimistic; the other cells' numbers are fair estimates. The sklearn models fit on each fold's "
             "training part; the JAX heads early-stop on a validation part carved from it.", "",
             "| classifier | " + " | ".join(fs) + " |", "|---" * (len(fs) + 1) + "|"]
    if not report.get("extraction_complete", True):
        lines[1:1] = ["", "**INCOMPLETE EXTRACTION** (run with --allow-incomplete): the embeddings did not finish; "
                          "these numbers are not comparable to a full run."]
    for clf in report["classifiers"]:
        row = []
        for f in fs:
            c = cells.get((f, clf))
            row.append("-" if c is None else "failed" if c.get("error") else
                       f"{c[m1 + '_mean']:.4f} ± {c[m1 + '_std']:.4f} / {c[m2 + '_mean']:.4f} ± {c[m2 + '_std']:.4f}")
        if any(r != "-" for r in row):
            lines.append(f"| {clf} | " + " | ".join(row) + " |")
    lines += [""] + [f"- failed: {c['classifier']} on {c['feature_set']}: {c['error']}"
                     for c in report["cells"] if c.get("error")]
    lines += ["", f"Total wall time {report['wall_seconds']:.1f} s with jobs={report['jobs']} on "
              f"{report['machine']['cpus']} CPUs."]
    return "\n".join(lines) + "\n"
