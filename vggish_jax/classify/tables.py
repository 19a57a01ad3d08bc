"""The tables and figures of a comparison: table.md (split mode, or cross-validated: `compare --cv`), the best
model's confusion matrix or per-class AP, the class balance (the paper's Figure 2), and the machine and
library versions every table.json records."""
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


def _rows(report: dict, cell_text) -> list[str]:
    """One markdown row per classifier with any cell: `cell_text(cell)`, "failed" or "-" per feature set."""
    cells = {(c["feature_set"], c["classifier"]): c for c in report["cells"]}
    lines = []
    for clf in report["classifiers"]:
        row = []
        for f in report["feature_sets"]:
            c = cells.get((f, clf))
            row.append("-" if c is None else "failed" if c.get("error") else cell_text(c))
        if any(r != "-" for r in row):
            lines.append(f"| {clf} | " + " | ".join(row) + " |")
    return lines


def _footer(report: dict) -> list[str]:
    """The failed cells with their reasons, then the wall time."""
    return ([""] + [f"- failed: {c['classifier']} on {c['feature_set']}: {c['error']}"
                    for c in report["cells"] if c.get("error")]
            + ["", f"Total wall time {report['wall_seconds']:.1f} s with jobs={report['jobs']} on "
                   f"{report['machine']['cpus']} CPUs."])


def _header_row(report: dict) -> list[str]:
    fs = report["feature_sets"]
    return ["| classifier | " + " | ".join(fs) + " |", "|---" * (len(fs) + 1) + "|"]


def render_markdown(report: dict) -> str:
    """table.md: test scores per cell with validation in parentheses (cross-validated: `render_cv_markdown`)."""
    if "cv" in report:
        return render_cv_markdown(report)
    m1, m2 = metric_names(report.get("multilabel", False))
    b = report["best"]
    lines = [f"# Genre classification: {report['dataset']} (final_relu={report['final_relu']}, "
             f"postprocess={report['postprocess']})", "",
             f"Splits: {report['split_sizes']}. Cells: test {m1} / test {m2.replace('_', '-')}, validation {m1} in "
             f"parentheses. Best on validation: **{b['classifier']} on {b['feature_set']}** "
             f"(validation {m1} {b['validation_' + m1]:.4f}; test {m1} {b['test_' + m1]:.4f}, "
             f"test {m2.replace('_', '-')} {b['test_' + m2]:.4f}).", "", _selection_line(report, m1, m2), "",
             *_header_row(report)]
    if not report.get("extraction_complete", True):
        of = {s: f"{n} of {report['candidates'].get(s) or '?'}" for s, n in report["split_sizes"].items()}
        lines[1:1] = ["", f"**INCOMPLETE EXTRACTION** (run with allow_incomplete): the embeddings did not finish; "
                          f"clips per split {of} candidates. These numbers are not comparable to a full run."]
    lines += _rows(report, lambda c: f"{c['test_' + m1]:.4f} / {c['test_' + m2]:.4f} ({c['validation_' + m1]:.4f})")
    return "\n".join(lines + _footer(report)) + "\n"


def _selection_line(report: dict, m1: str, m2: str) -> str:
    """The paragraph naming the selected model, its protocol, its refit and how to get the other protocol."""
    sel, r = report.get("selection"), report.get("refit")
    if sel is None:  # a table.json written before selection protocols
        sel = {**report["best"], "protocol": "validation", "selected_by": "validation", "why": "", "cv": [],
               "other": ""}
    text = f"**Selected: {sel['classifier']} on {sel['feature_set']}**, "
    if sel["protocol"] == "cv":
        text += f"by {sel['selected_by']} ({sel['why']}); CV {m1}: " + ", ".join(
            f"{c['classifier']} on {c['feature_set']} {c['cv_mean']:.4f} ± {c['cv_std']:.4f}" for c in sel["cv"]) + "."
    else:
        text += f"the best on validation ({sel['why']})." if sel["why"] else "the best on validation."
    if r:
        text += (f" Refitted on train + validation ({r['train_clips']} clips): test {m1} {r['test_' + m1]:.4f}, "
                 f"test {m2.replace('_', '-')} {r['test_' + m2]:.4f}.")
    return text + (f" ({sel['other'][0].upper()}{sel['other'][1:]}.)" if sel["other"] else "")


def render_cv_markdown(report: dict) -> str:
    """The split mode's table with "mean ± std" over the held-out folds in each cell."""
    cv = report["cv"]
    m1, m2 = metric_names(report["multilabel"])
    n1, n2 = m1, m2.replace("_", "-")
    b = report["best"]
    how = "stratified" + (" on each clip's rarest class" if report["multilabel"] else "")
    if cv["grouped"]:
        how += f", grouped by the store's groups ({cv['groups']} groups, none in two folds)"
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
             "training part; the JAX heads early-stop on a validation part carved from it.", "", *_header_row(report)]
    if not report.get("extraction_complete", True):
        lines[1:1] = ["", "**INCOMPLETE EXTRACTION** (run with allow_incomplete): the embeddings did not finish; "
                          "these numbers are not comparable to a full run."]
    lines += _rows(report, lambda c: f"{c[m1 + '_mean']:.4f} ± {c[m1 + '_std']:.4f} / "
                                     f"{c[m2 + '_mean']:.4f} ± {c[m2 + '_std']:.4f}")
    return "\n".join(lines + _footer(report)) + "\n"


def per_class_bars(values, label_names, ylabel: str, title: str, size, path: str) -> None:
    """One bar per class (a score in 0..1), saved as a PNG."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    ax.bar(range(len(label_names)), values)
    ax.set_xticks(range(len(label_names)), label_names, rotation=60, ha="right")
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
        per_class_bars(metrics.per_class_ap(y_test, pred), label_names, f"{held_out} average precision",
                       f"per-class AP: {title}", size, os.path.join(out, "per_class_ap.png"))
    else:
        cm = metrics.confusion(y_test, pred, k)
        fig, ax = plt.subplots(figsize=(max(7, 0.4 * k + 3), max(6, 0.4 * k + 2)))
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(k), label_names, rotation=60, ha="right")
        ax.set_yticks(range(k), label_names)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7 if k > 10 else 8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{held_out} confusion: {title}")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "confusion_best.png"), dpi=120)
        plt.close(fig)
        per_genre = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
        per_class_bars(per_genre, label_names, f"{held_out} accuracy (recall)", f"per-genre accuracy: {title}", size,
                        os.path.join(out, "per_genre_accuracy.png"))
    counts = report["class_counts"]
    fig, ax = plt.subplots(figsize=size)
    width = 0.8 / len(counts)
    for i, (s, c) in enumerate(counts.items()):
        ax.bar(np.arange(k) + (i - (len(counts) - 1) / 2) * width, c, width, label=s)
    ax.set_xticks(range(k), label_names, rotation=60, ha="right")
    ax.set_ylabel("clips")
    ax.set_title("class balance per split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "class_balance.png"), dpi=120)
    plt.close(fig)


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count()}


def versions() -> dict:
    import jax
    import sklearn
    return {"python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__,
            "jax": jax.__version__}
