"""Cross-validated comparison (`compare --cv K`): every cell of the table scored on K held-out folds.

The JAX heads get an inner validation part carved from each fold's training part the same way; a store's test
split, if any, is not used. The best cell is selected and scored on the same folds, so its mean is optimistic.
"""
from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from vggish_jax.classify.tables import metric_names
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


def n_groups(groups) -> int:
    return len(set(_group_ids(groups)))


def _split(labels: np.ndarray, parts: int, gids, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """sklearn's stratified (grouped when `gids`) shuffled K-fold (train_idx, test_idx) pairs."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    splitter = (StratifiedKFold if gids is None else StratifiedGroupKFold)(parts, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer members than n_splits"
        return list(splitter.split(np.zeros(len(labels)), _strata(labels), gids))


def check(labels, k: int, groups=None, label_names=None) -> None:
    """Refuse, in one line with what to use instead, K folds that cannot each hold out every class."""
    labels = np.asarray(labels)
    if k < 2:
        raise FoldError(f"--cv {k}: cross-validation needs K >= 2 folds")
    if groups is not None:
        n = n_groups(groups)
        if n < k:
            raise FoldError(f"--cv {k} needs at least {k} groups, but the clips come from {n} groups (the "
                            f"labels CSV's group column); use --cv {n} or fewer" if n >= 2 else
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


def folds(labels, k: int, groups=None, seed: int = 0, label_names=None, strict: bool = True
          ) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train_idx, test_idx) pairs: stratified by class, and grouped (no group in two folds) when `groups`
    (one per clip; '' = a group of its own) are given. Every clip is held out exactly once. `strict`: refuse
    (`check`) K that some class cannot fill; otherwise such a class is simply absent from some folds."""
    labels = np.asarray(labels)
    if strict:
        check(labels, k, groups, label_names)
    return _split(labels, k, _group_ids(groups), seed)


def inner_split(labels, k: int, groups=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit_idx, validation_idx) within one fold's training part: one of max(K, 4) parts made as `folds`
    makes them (grouped when `groups` are given, at most one part per group), held out for validation."""
    labels = np.asarray(labels)
    gids = _group_ids(groups)
    parts = min(max(k, MIN_INNER_PARTS), len(labels), len(labels) if gids is None else len(set(gids)))
    if parts < 2:
        raise FoldError(f"a fold's training part has too few clips or groups ({len(labels)} clips) to hold out "
                        f"a validation part; use fewer folds (--cv)")
    return _split(labels, parts, gids, seed)[0]


def store_splits(root: str, info: dict) -> list[str]:
    """The splits of a store: info.json's, else the folders holding shards."""
    names = list(info.get("splits") or {})
    return names or sorted(d for d in os.listdir(root) if store.shard_paths(root, d))


def pooled_groups(info: dict, splits: dict[str, store.Split]) -> np.ndarray | None:
    """The group of every pooled clip (by split, then track_id = position in the source's split), or None."""
    groups = info.get("groups") or {}
    if not any(groups.get(s) for s in splits):
        return None
    return np.asarray([str(groups[s][int(t)]) if groups.get(s) else "" for s, sp in splits.items()
                       for t in sp.track_ids])


def take(x, idx: np.ndarray):
    """Rows `idx` of a feature matrix or of a list of per-clip frame arrays."""
    return [x[i] for i in idx] if isinstance(x, list) else x[idx]


def pool(x: dict, y: dict, names: list[str]) -> tuple[np.ndarray | list, np.ndarray]:
    """One feature matrix (or list of frame arrays) and one label array over the splits `names`, in order."""
    xs = [x[s] for s in names]
    return ([c for part in xs for c in part] if isinstance(xs[0], list) else np.concatenate(xs),
            np.concatenate([y[s] for s in names]))


@dataclasses.dataclass
class Plan:
    """The folds of one cross-validated table."""
    k: int
    seed: int
    names: list[str]  # the store's splits pooled, in order
    sizes: list[int]  # their clips
    labels: np.ndarray  # of the pooled clips
    groups: np.ndarray | None
    folds: list[tuple[np.ndarray, np.ndarray]]

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2


def make_plan(embeddings_dir: str, info: dict, splits: dict[str, store.Split], k: int, seed: int = 0) -> Plan:
    """The K folds of the pooled `splits`, grouped by info.json's groups when it has them; a store that cannot
    be folded so is refused in one line naming it."""
    names = list(splits)
    labels = np.concatenate([splits[s].labels for s in names])
    label_names = list(info.get("label_names") or [])
    if not label_names or (labels.ndim == 1 and (labels < 0).any()):
        raise FoldError(f"{embeddings_dir}: has no class labels (a folder without one subfolder per class?); "
                        f"extract a folder with one subfolder per class, or a --labels CSV")
    groups = pooled_groups(info, splits)
    try:
        return Plan(k, seed, names, [len(splits[s]) for s in names], labels, groups,
                    folds(labels, k, groups, seed, label_names))
    except FoldError as e:
        raise FoldError(f"{embeddings_dir}: {e}") from None


def head_fold_data(x, y: np.ndarray, train: np.ndarray, test: np.ndarray, plan: Plan) -> tuple[dict, dict]:
    """(x, y) by split for a JAX head on one fold: 'validation' (for early stopping) carved from the fold's
    training part by `inner_split`, 'train' the rest, 'test' the held-out fold."""
    fit, val = inner_split(y[train], plan.k, None if plan.groups is None else plan.groups[train], plan.seed)
    fit, val = train[fit], train[val]
    return ({"train": take(x, fit), "validation": take(x, val), "test": take(x, test)},
            {"train": y[fit], "validation": y[val], "test": y[test]})


def aggregate(feature_set: str, classifier: str, runs: list[dict], metrics: tuple[str, str]) -> dict:
    """One cell from its per-fold runs: the held-out scores per fold, their mean and std (ddof 0), times summed;
    a cell that failed on any fold is failed."""
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


def finish_report(report: dict, plan: Plan, runs: dict[tuple[str, str], list[dict]],
                  not_used: dict[str, int]) -> tuple[dict, dict]:
    """`report` (the split mode's store and run fields) completed with the folds, the cells and the best cell
    (the highest mean held-out score); returns it and the best cell."""
    m1, m2 = metric_names(plan.multilabel)
    cells = [aggregate(f, c, r, (m1, m2)) for (f, c), r in runs.items()]
    ok = [c for c in cells if not c.get("error")]
    if not ok:
        raise FoldError(f"{report['embeddings']}: every cell failed on some fold (e.g. {cells[0].get('error')}); "
                        f"choose other --classifiers/--features")
    best = max(ok, key=lambda c: c[f"{m1}_mean"])  # selected on the folds that score it: optimistic
    fold_of_clip = pooled_predictions([{"test_predictions": np.full(len(te), j)} for j, (_, te) in
                                       enumerate(plan.folds)], plan)
    report.update({
        "multilabel": plan.multilabel, "metric": m1,
        "split_sizes": dict(zip(plan.names, plan.sizes)),
        "cv": {"k": plan.k, "seed": plan.seed, "pooled_splits": plan.names, "not_used": not_used,
               "grouped": plan.groups is not None,
               "groups": None if plan.groups is None else n_groups(plan.groups),
               "fold_sizes": [len(te) for _, te in plan.folds], "fold_of_clip": fold_of_clip.tolist(),
               "std": "over folds, ddof 0",
               "inner_validation": f"JAX heads: 1 of max(K, {MIN_INNER_PARTS}) parts of each fold's training part"},
        "best": {k: best[k] for k in ("feature_set", "classifier", f"{m1}_mean", f"{m1}_std", f"{m2}_mean",
                                      f"{m2}_std")},
        "cells": cells})
    return report, best


def pooled_predictions(runs: list[dict], plan: Plan) -> np.ndarray:
    """Each clip's prediction (multi-label: class scores) from the fold that held it out."""
    first = np.asarray(runs[0]["test_predictions"])
    pred = np.zeros((len(plan.labels),) + first.shape[1:], first.dtype if first.ndim == 1 else np.float64)
    for r, (_, te) in zip(runs, plan.folds):
        pred[te] = np.asarray(r["test_predictions"])
    return pred
