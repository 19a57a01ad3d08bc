"""A comparison's table.md and figures (the best model's confusion or per-class AP, the class balance: the
paper's Figure 2), and the machine and library versions every table.json records."""
from __future__ import annotations

import os
import platform

import numpy as np

from vggish_jax.classify import metrics
from vggish_jax.classify.metrics import names as metric_names  # noqa: F401 (the tables' score pair)


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Clips per class (multi-label: clips carrying the class)."""
    labels = np.asarray(labels)
    return labels.sum(0).astype(np.int64) if labels.ndim == 2 else np.bincount(labels, minlength=n_classes)


def render_markdown(report: dict) -> str:
    """table.md: per cell test scores with validation in parentheses, or (cross-validated) mean ± std over the
    held-out folds."""
    cv = report.get("cv")
    m1, m2 = metric_names(report.get("multilabel", False))
    fs, folds = report["feature_sets"], f", {cv['k']}-fold cross-validation" if cv else ""
    lines = [f"# Genre classification: {report['dataset']} (final_relu={report['final_relu']}, "
             f"postprocess={report['postprocess']}){folds}", "",
             *(_cv_intro(report, m1, m2) if cv else _split_intro(report, m1, m2)), "",
             "| classifier | " + " | ".join(fs) + " |", "|---" * (len(fs) + 1) + "|"]
    if not report.get("extraction_complete", True):
        of = {s: f"{n} of {report['candidates'].get(s) or '?'}" for s, n in report["split_sizes"].items()} \
            if not cv else None
        lines[1:1] = ["", "**INCOMPLETE EXTRACTION** (run with allow_incomplete): the embeddings did not finish; " +
                      (f"clips per split {of} candidates. These" if of is not None else "these") +
                      " numbers are not comparable to a full run."]

    def text(c: dict) -> str:
        if cv:
            return f"{c[m1 + '_mean']:.4f} ± {c[m1 + '_std']:.4f} / {c[m2 + '_mean']:.4f} ± {c[m2 + '_std']:.4f}"
        return f"{c['test_' + m1]:.4f} / {c['test_' + m2]:.4f} ({c['validation_' + m1]:.4f})"

    cells = {(c["feature_set"], c["classifier"]): c for c in report["cells"]}
    for clf in report["classifiers"]:
        row = ["-" if (c := cells.get((f, clf))) is None else "failed" if c.get("error") else text(c) for f in fs]
        if any(r != "-" for r in row):
            lines.append(f"| {clf} | " + " | ".join(row) + " |")
    lines += [""] + [f"- failed: {c['classifier']} on {c['feature_set']}: {c['error']}"
                     for c in report["cells"] if c.get("error")]
    lines += ["", f"Total wall time {report['wall_seconds']:.1f} s with jobs={report['jobs']} on "
                  f"{report['machine']['cpus']} CPUs."]
    return "\n".join(lines) + "\n"


def _split_intro(report: dict, m1: str, m2: str) -> list[str]:
    """What the cells hold, the best on validation, and the selected model (its protocol and refit)."""
    n2, b, sel, r = m2.replace("_", "-"), report["best"], report.get("selection"), report.get("refit")
    if sel is None:  # a table.json written before selection protocols
        sel = {**b, "protocol": "validation", "selected_by": "validation", "why": "", "cv": [], "other": ""}
    text = f"**Selected: {sel['classifier']} on {sel['feature_set']}**, "
    if sel["protocol"] == "cv":
        text += f"by {sel['selected_by']} ({sel['why']}); CV {m1}: " + ", ".join(
            f"{c['classifier']} on {c['feature_set']} {c['cv_mean']:.4f} ± {c['cv_std']:.4f}" for c in sel["cv"]) + "."
    else:
        text += f"the best on validation ({sel['why']})." if sel["why"] else "the best on validation."
    if r:
        text += (f" Refitted on train + validation ({r['train_clips']} clips): test {m1} {r['test_' + m1]:.4f}, "
                 f"test {n2} {r['test_' + m2]:.4f}.")
    text += f" ({sel['other'][0].upper()}{sel['other'][1:]}.)" if sel["other"] else ""
    return [f"Splits: {report['split_sizes']}. Cells: test {m1} / test {n2}, validation {m1} in parentheses. Best on "
            f"validation: **{b['classifier']} on {b['feature_set']}** (validation {m1} {b['validation_' + m1]:.4f}; "
            f"test {m1} {b['test_' + m1]:.4f}, test {n2} {b['test_' + m2]:.4f}).", "", text]


def _cv_intro(report: dict, m1: str, m2: str) -> list[str]:
    """How the folds were made, what the cells hold, and why the best cell's mean is optimistic."""
    cv, n2, b = report["cv"], m2.replace("_", "-"), report["best"]
    how = "stratified" + (" on each clip's rarest class" if report["multilabel"] else "")
    if cv["grouped"]:
        how += f", grouped by the store's groups ({cv['groups']} groups, none in two folds)"
    unused = "".join(f"; the {s} split ({n} clips) is not used" for s, n in cv["not_used"].items())
    return [f"{cv['k']}-fold cross-validation, {how}, over {' + '.join(cv['pooled_splits'])} "
            f"({sum(cv['fold_sizes'])} clips, folds of {', '.join(map(str, cv['fold_sizes']))}){unused}. "
            f"Cells: held-out {m1} / held-out {n2}, mean ± std over the {cv['k']} folds (per-fold scores in "
            f"table.json). Highest mean held-out {m1}: **{b['classifier']} on {b['feature_set']}** "
            f"({m1} {b[m1 + '_mean']:.4f} ± {b[m1 + '_std']:.4f}, "
            f"{n2} {b[m2 + '_mean']:.4f} ± {b[m2 + '_std']:.4f}).",
            "", "With cross-validation the best cell is selected on the same folds that score it, so its mean is "
            "optimistic; the other cells' numbers are fair estimates. The sklearn models fit on each fold's "
            "training part; the JAX heads early-stop on a validation part carved from it."]


def _bars(path: str, label_names, size, ylabel: str, title: str, series: dict, counts: bool = False) -> None:
    """Side-by-side bars per class, one colour per series (scores in 0..1, or `counts` with a legend), as a PNG."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(label_names)) + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(range(len(label_names)), label_names, rotation=60, ha="right")
    if counts:
        ax.legend()
    else:
        ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_results(out: str, best: dict, y_test: np.ndarray, label_names: list[str], report: dict,
                 held_out: str = "test") -> None:
    """confusion_best.png + per_genre_accuracy.png (or per_class_ap.png, multi-label) of the best model's
    `held_out` predictions, and class_balance.png (the paper's Figure 2)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = np.asarray(best["test_predictions"])
    k = len(label_names)
    size = (max(7, 0.35 * k + 3), max(4, 0.15 * k + 3))
    title = f"{best['classifier']} on {best['feature_set']}"
    if np.ndim(y_test) == 2:
        _bars(os.path.join(out, "per_class_ap.png"), label_names, size, f"{held_out} average precision",
              f"per-class AP: {title}", {"AP": metrics.per_class_ap(y_test, pred)})
    else:
        cm = metrics.confusion(y_test, pred, k)
        fig, ax = plt.subplots(figsize=(max(7, 0.4 * k + 3), max(6, 0.4 * k + 2)))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(k), label_names, rotation=60, ha="right")
        ax.set_yticks(range(k), label_names)
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7 if k > 10 else 8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{held_out} confusion: {title}")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "confusion_best.png"), dpi=120)
        plt.close(fig)
        _bars(os.path.join(out, "per_genre_accuracy.png"), label_names, size, f"{held_out} accuracy (recall)",
              f"per-genre accuracy: {title}", {"recall": cm.diagonal() / np.maximum(cm.sum(axis=1), 1)})
    _bars(os.path.join(out, "class_balance.png"), label_names, size, "clips", "class balance per split",
          report["class_counts"], counts=True)


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count()}


def versions() -> dict:
    import jax
    import sklearn
    return {"python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__,
            "jax": jax.__version__}
