"""Which model a split-mode table selects (`CompareSettings.selection`); the test split is never looked at.

  "validation"  the cell best on the validation split.
  "cv"          the `finalists` best on validation, scored by stratified K-fold CV over train + validation grouped
                by the store's groups (e.g. AudioSet's video ids); the highest mean wins. JAX heads train each
                fold for the epochs validation chose.
  "auto"        (default) "cv" where the validation split has fewer than CV_BELOW clips, else "validation".

Why "auto": the accuracy of one model on 327 validation clips has a standard error near 0.027, more than the
gaps between the best few cells, so on a small validation split the ranking of the finalists is mostly noise
(AudioSet's 25 genres: SVCpoly1 wins validation and scores 0.575 on test; CV over 2,178 clips picks
JAX-frames, 0.596). From about 1,000 validation clips on the error is small next to those gaps and the K extra
fits per finalist buy little. Multi-label stores are selected on validation (the CV here scores one label).
"""
from __future__ import annotations

import time

import numpy as np

from vggish_jax.classify import cv, metrics

PROTOCOLS = ("auto", "cv", "validation")
CV_BELOW = 1000  # "auto" cross-validates the finalists below this many validation clips


def protocol(setting: str, n_validation: int, multilabel: bool) -> tuple[str, str]:
    """(the protocol that selects, why it does) for `CompareSettings.selection` on this store."""
    if multilabel:
        return "validation", "multi-label store: cross-validated selection scores single-label stores only"
    if setting == "auto":
        small = n_validation < CV_BELOW
        return ("cv" if small else "validation",
                f"selection \"auto\": {n_validation} validation clips, {'fewer' if small else 'not fewer'} than "
                f"{CV_BELOW:,}")
    return setting, f"selection \"{setting}\""


def finalists(cells: list[dict], n: int) -> list[dict]:
    """The `n` cells best on validation (ties: table order), failed cells left out."""
    ok = [c for c in cells if c.get("validation_score") is not None]
    return sorted(ok, key=lambda c: -c["validation_score"])[:n]


def fold_scores(cell: dict, data: dict, groups, extra, head, k: int, seed: int, fit_predict) -> list[float]:
    """Accuracy on each of K held-out folds of train + validation for one cell (`head`: its trained JAX head;
    `extra` (clips, soft targets[, groups]) trains JAX-frames minus held-out groups). `fit_predict`: compare's
    (passed in: compare imports this module)."""
    d = data[cell["feature_set"]]
    x, y = cv.pool(d.x, d.y, ["train", "validation"])
    out = []
    # strict=False: a class with fewer than K clips is only missing from some folds, as from a random split
    for tr, te in cv.folds(y, k, groups, seed, strict=False):
        ex = extra
        if extra is not None and len(extra) > 2 and groups is not None:
            held = set(np.asarray(groups)[te])
            keep = np.asarray([g not in held for g in extra[2]], bool)
            ex = ([c for c, kept in zip(extra[0], keep) if kept], np.asarray(extra[1])[keep])
        pred, _ = fit_predict(cell, d, cv.take(x, tr), y[tr], cv.take(x, te), head, seed, ex)
        out.append(metrics.accuracy(y[te], pred))
    return out


def select(cells: list[dict], data: dict, trained: dict, groups, settings, n_validation: int, log,
           fit_predict) -> dict:
    """table.json's "selection": protocol, why, the finalists' CV scores and the chosen cell. `trained`: JAX heads
    by classifier; `groups`: one per clip of train + validation, or None."""
    y = np.concatenate([data[cells[0]["feature_set"]].y[s] for s in ("train", "validation")])
    how, why = protocol(settings.selection, n_validation, np.ndim(y) == 2)
    # K capped by the groups and by the largest class (stratified folds need one class with K clips)
    k = min(settings.selection_folds, cv.n_groups(groups) if groups is not None else len(y),
            int(np.bincount(y).max())) if how == "cv" else 0
    if how == "cv" and k < 2:
        how, why = "validation", why + "; too few clips or groups for 2 folds"
    scored = []
    for cell in finalists(cells, settings.finalists) if how == "cv" else []:
        t0 = time.perf_counter()
        folds = fold_scores(cell, data, groups, settings.extra_train, trained.get(cell["classifier"]), k,
                            settings.seed, fit_predict)
        scored.append({"classifier": cell["classifier"], "feature_set": cell["feature_set"],
                       "validation_score": cell["validation_score"], "cv_folds": folds,
                       "cv_mean": float(np.mean(folds)), "cv_std": float(np.std(folds)),
                       "seconds": time.perf_counter() - t0})
        log(f"selection: CV {cell['classifier']} on {cell['feature_set']}: {np.mean(folds):.4f} "
            f"+- {np.std(folds):.4f}")
    chosen = max(scored, key=lambda c: c["cv_mean"]) if scored else finalists(cells, 1)[0]
    grouped = "grouped " if groups is not None else ""
    return {"protocol": how, "why": why, "setting": settings.selection,
            "selected_by": f"{grouped}stratified {k}-fold CV over train + validation among the {len(scored)} best "
                           f"on validation" if scored else "validation",
            "classifier": chosen["classifier"], "feature_set": chosen["feature_set"],
            "validation_score": chosen["validation_score"], "cv": scored,
            "other": OTHER[how]}


# How to get the other protocol, as the table says it.
OTHER = {"cv": "for the validation winner instead, set selection = \"validation\" in a --config file "
               "(CompareSettings(selection=\"validation\"))",
         "validation": "for grouped cross-validation among the best on validation, set selection = \"cv\" in a "
                       "--config file (CompareSettings(selection=\"cv\"))"}
