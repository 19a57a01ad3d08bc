"""The scores of the comparison table, its cross-validation, the heads' early stopping and `predict --head`.

Single-label: accuracy and macro-F1 (over classes in the labels or predictions). Multi-label: mAP and macro
ROC-AUC over the classes with a positive and a negative clip. NumPy, equal to scikit-learn's (ties included).
"""
from __future__ import annotations

import numpy as np


def names(multilabel: bool) -> tuple[str, str]:
    """The two scores of a table: accuracy and macro-F1, or (multi-label) mAP and macro ROC-AUC. The first is
    the one models are selected and early-stopped on."""
    return ("mAP", "roc_auc") if multilabel else ("accuracy", "macro_f1")


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """The fraction of clips whose predicted class index is the label."""
    return float(np.mean(np.asarray(pred) == np.asarray(y)))


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[classes, classes] clip counts: row the true class, column the predicted one."""
    flat = np.asarray(y, np.int64) * n_classes + np.asarray(pred, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the classes in `y` or `pred` of F1 = 2 TP / (2 TP + FP + FN)."""
    y, pred = np.asarray(y, np.int64), np.asarray(pred, np.int64)
    present = np.unique(np.concatenate([y, pred]))
    cm = confusion(y, pred, int(present.max()) + 1)[np.ix_(present, present)]
    tp = np.diag(cm)
    return float(np.mean(2 * tp / (cm.sum(0) + cm.sum(1))))  # FP + TP = column, FN + TP = row: never 0 here


def scorable(y: np.ndarray) -> np.ndarray:
    """[classes] bool: the classes with at least one positive and one negative clip in multi-hot `y`."""
    pos = np.asarray(y).astype(bool).sum(0)
    return (pos > 0) & (pos < len(y))


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """One class: the sum over distinct score thresholds of (recall gained) x precision at that threshold."""
    y, s = np.asarray(y).astype(bool), np.asarray(s, np.float64)
    order = np.argsort(-s, kind="mergesort")
    last = np.r_[np.flatnonzero(np.diff(s[order])), len(s) - 1]  # the last clip of each run of equal scores
    tp = np.cumsum(y[order])[last]
    precision, recall = tp / (last + 1), tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """One class: the probability that a random positive scores above a random negative (ties count half), the
    Mann-Whitney U of the positives' average ranks."""
    from scipy import stats

    y = np.asarray(y).astype(bool)
    ranks, n_pos = stats.rankdata(np.asarray(s, np.float64)), int(y.sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(y) - n_pos)))


def _macro(per_class, y: np.ndarray, scores: np.ndarray) -> float:
    """Mean of `per_class` over the scorable classes (NaN when none is)."""
    y, scores = np.asarray(y), np.asarray(scores)
    keep = np.flatnonzero(scorable(y))
    return float(np.mean([per_class(y[:, c], scores[:, c]) for c in keep])) if len(keep) else float("nan")


def mean_average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Multi-hot [clips, classes] labels, per-class scores: mean AP over the scorable classes."""
    return _macro(average_precision, y, scores)


def macro_roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Multi-hot [clips, classes] labels, per-class scores: mean ROC-AUC over the scorable classes."""
    return _macro(roc_auc, y, scores)


def per_class_ap(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[classes] AP, NaN for a class that is not scorable."""
    y, scores = np.asarray(y), np.asarray(scores)
    ok = scorable(y)
    return np.array([average_precision(y[:, c], scores[:, c]) if ok[c] else np.nan for c in range(y.shape[1])])


def score_pair(y: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """{name: value} of both table scores: `out` is class indices (single-label) or per-class scores
    (multi-label, `y` multi-hot)."""
    y, out = np.asarray(y), np.asarray(out)
    if y.ndim == 2:
        return {"mAP": mean_average_precision(y, out), "roc_auc": macro_roc_auc(y, out)}
    return {"accuracy": accuracy(y, out), "macro_f1": macro_f1(y, out)}


def selection(y: np.ndarray, probs: np.ndarray) -> float:
    """The score models are chosen and early-stopped on, from [clips, classes] probabilities: accuracy of the
    argmax, or (multi-hot `y`) mAP."""
    y, probs = np.asarray(y), np.asarray(probs)
    return mean_average_precision(y, probs) if y.ndim == 2 else accuracy(y, probs.argmax(-1))
