"""The tables and figures of a comparison: table.md (split mode; cross-validated tables are rendered by
`cv.render_markdown`), the best model's confusion matrix or per-class AP, the class balance (the paper's
Figure 2), and the machine and library versions every table.json records."""
from __future__ import annotations

import os
import platform

import numpy as np

from vggish_jax.classify import cv


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Clips per class (multi-label: clips carrying the class)."""
    labels = np.asarray(labels)
    return labels.sum(0).astype(np.int64) if labels.ndim == 2 else np.bincount(labels, minlength=n_classes)


def render_markdown(report: dict) -> str:
    if "cv" in report:
        return cv.render_markdown(report)
    fs = report["feature_sets"]
    multilabel = report.get("multilabel", False)
    m1, m2 = ("mAP", "roc_auc") if multilabel else ("accuracy", "macro_f1")
    cells = {(c["feature_set"], c["classifier"]): c for c in report["cells"]}
    b = report["best"]
    lines = [f"# Genre classification: {report['dataset']} (final_relu={report['final_relu']}, "
             f"postprocess={report['postprocess']})", "",
             f"Splits: {report['split_sizes']}. Cells: test {m1} / test {m2.replace('_', '-')}, validation {m1} in "
             f"parentheses. Best on validation: **{b['classifier']} on {b['feature_set']}** "
             f"(validation {m1} {b['validation_' + m1]:.4f}; test {m1} {b['test_' + m1]:.4f}, "
             f"test {m2.replace('_', '-')} {b['test_' + m2]:.4f}).", "",
             "| classifier | " + " | ".join(fs) + " |", "|---" * (len(fs) + 1) + "|"]
    if not report.get("extraction_complete", True):
        of = {s: f"{n} of {report['candidates'].get(s) or '?'}" for s, n in report["split_sizes"].items()}
        lines[1:1] = ["", f"**INCOMPLETE EXTRACTION** (run with --allow-incomplete): the embeddings did not finish; "
                          f"clips per split {of} candidates. These numbers are not comparable to a full run."]
    for clf in report["classifiers"]:
        row = []
        for f in fs:
            c = cells.get((f, clf))
            if c is None:
                row.append("-")
            elif c.get("error"):
                row.append("failed")
            else:
                row.append(f"{c['test_' + m1]:.4f} / {c['test_' + m2]:.4f} ({c['validation_' + m1]:.4f})")
        if any(r != "-" for r in row):
            lines.append(f"| {clf} | " + " | ".join(row) + " |")
    if report.get("refit"):
        r = report["refit"]
        lines[2] += (f" Refitted on train + validation ({r['train_clips']} clips): test {m1} {r['test_' + m1]:.4f}, "
                     f"test {m2.replace('_', '-')} {r['test_' + m2]:.4f}.")
    failed = [c for c in report["cells"] if c.get("error")]
    lines += [""] + [f"- failed: {c['classifier']} on {c['feature_set']}: {c['error']}" for c in failed]
    lines += ["", f"Total wall time {report['wall_seconds']:.1f} s with jobs={report['jobs']} on "
              f"{report['machine']['cpus']} CPUs."]
    return "\n".join(lines) + "\n"


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
    """confusion_best.png + per_genre_accuracy.png (single-label) or per_class_ap.png (multi-label) for the
    best model on its `held_out` predictions, and class_balance.png (clips per class and split, the paper's
    Figure 2)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, confusion_matrix

    pred = np.asarray(best["test_predictions"])
    k = len(label_names)
    size = (max(7, 0.35 * k + 3), max(4, 0.15 * k + 3))
    title = f"{best['classifier']} on {best['feature_set']}"
    if np.ndim(y_test) == 2:
        ap = [average_precision_score(y_test[:, c], pred[:, c]) if y_test[:, c].any() else np.nan for c in range(k)]
        per_class_bars(ap, label_names, f"{held_out} average precision", f"per-class AP: {title}", size,
                        os.path.join(out, "per_class_ap.png"))
    else:
        cm = confusion_matrix(y_test, pred, labels=range(k))
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
