"""The paper's comparison table: 13 classifiers (FMA's baseline recipe) x feature sets, plus better heads.

    python -m vggish_jax.classify.compare --embeddings E --out results/<run> [--data-dir D] [--jobs N]
    (same as `vggish-jax compare ...`)

Every model is fitted on the training split only (StandardScaler, PCA and classifier inside one sklearn
Pipeline); validation and test are only ever predicted. The best model is chosen on validation. Feature sets:
  embedding          31 x 128 = 3968-d flattened VGGish embeddings (vggish_jax.classify.features.flatten)
  embedding+pca128   the same, scaled, then PCA to 128 dims fitted on train
  mean_std           mean and std of the frame embeddings (256-d)
  mfcc               MFCC statistics from the log-mels (needs the TFDS dataset: --data-dir)
  musicnn            mean+std of MusiCNN's 200-d penultimate features over 3-s patches (needs a *_waveform
                     build, e.g. `extract --dataset fma/small_waveform`, and --data-dir); clips shorter than
                     one patch are repeated to fill it, as musicnn's training did ("repeat-pad")
Extra models beyond the paper: HGB (HistGradientBoostingClassifier, standing in for XGBoost) and JAX-MLP
(vggish_jax.classify.heads, early-stopped on validation; on mean_std only).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
import warnings

import numpy as np

from vggish_jax import atomic, spec as spec_lib
from vggish_jax.classify import features
from vggish_jax.datasets import decode
from vggish_jax.pipeline import store

PAPER_CLASSIFIERS = ("LR", "kNN", "SVCrbf", "SVCpoly1", "linSVC1", "linSVC2", "DT", "RF", "AdaBoost", "MLP1",
                     "MLP2", "NB", "QDA")
EXTRA_CLASSIFIERS = ("HGB", "JAX-MLP")
FEATURE_SETS = ("embedding", "embedding+pca128", "mean_std", "mfcc", "musicnn")
SPLITS = ("train", "validation", "test")


def make_classifier(name: str, seed: int = 0, n_train: int | None = None):
    """FMA's baseline settings (mdeff/fma): sklearn defaults except where noted; SVC gamma pinned to 'auto'.

    kNN's 200 neighbours are capped at the training-set size (only matters on toy data).
    """
    from sklearn import discriminant_analysis as da, ensemble, linear_model, naive_bayes, neighbors, neural_network
    from sklearn import svm, tree

    return {
        "LR": lambda: linear_model.LogisticRegression(),
        "kNN": lambda: neighbors.KNeighborsClassifier(n_neighbors=min(200, n_train or 200)),
        "SVCrbf": lambda: svm.SVC(kernel="rbf", gamma="auto", random_state=seed),
        "SVCpoly1": lambda: svm.SVC(kernel="poly", degree=1, gamma="auto", random_state=seed),
        "linSVC1": lambda: svm.SVC(kernel="linear", random_state=seed),
        "linSVC2": lambda: svm.LinearSVC(random_state=seed),
        "DT": lambda: tree.DecisionTreeClassifier(max_depth=5, random_state=seed),
        "RF": lambda: ensemble.RandomForestClassifier(max_depth=5, n_estimators=10, max_features=1, random_state=seed),
        "AdaBoost": lambda: ensemble.AdaBoostClassifier(n_estimators=10, random_state=seed),
        "MLP1": lambda: neural_network.MLPClassifier(hidden_layer_sizes=(100,), max_iter=2000, random_state=seed),
        "MLP2": lambda: neural_network.MLPClassifier(hidden_layer_sizes=(200, 50), max_iter=2000, random_state=seed),
        "NB": lambda: naive_bayes.GaussianNB(),
        "QDA": lambda: da.QuadraticDiscriminantAnalysis(),
        "HGB": lambda: ensemble.HistGradientBoostingClassifier(random_state=seed),
    }[name]()


def make_pipeline(feature_set: str, classifier: str, seed: int = 0, n_train: int | None = None):
    """StandardScaler (+ PCA to 128 components, fitted on train; fewer only on toy data) + classifier."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [("scale", StandardScaler())]
    if feature_set.endswith("+pca128"):
        steps += [("pca", PCA(min(128, (n_train or 129) - 1), random_state=seed))]
    return Pipeline(steps + [("clf", make_classifier(classifier, seed, n_train))])


@dataclasses.dataclass
class Data:
    """Feature matrices per split for one feature set; labels per split."""
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]


def build_features(embeddings: dict[str, store.Split], mels: dict[str, list[np.ndarray]] | None = None,
                   waveforms: dict[str, list[np.ndarray]] | None = None) -> dict[str, Data]:
    """{feature_set: Data} from per-split embeddings (and log-mels for MFCC, 16 kHz waveforms for MusiCNN,
    aligned by clip)."""
    y = {s: embeddings[s].labels for s in SPLITS}
    flat = {s: features.flatten(embeddings[s].embeddings) for s in SPLITS}
    out = {"embedding": Data(flat, y), "embedding+pca128": Data(flat, y),
           "mean_std": Data({s: features.mean_std(embeddings[s].embeddings) for s in SPLITS}, y)}
    if mels is not None:
        out["mfcc"] = Data({s: np.stack([features.mfcc_stats(m) for m in mels[s]]) for s in SPLITS}, y)
    if waveforms is not None:
        out["musicnn"] = Data({s: musicnn_features(waveforms[s]) for s in SPLITS}, y)
    return out


def musicnn_features(waveforms: list[np.ndarray]) -> np.ndarray:
    """[clips, 400]: mean and std over patches of MusiCNN's penultimate features of 16 kHz waveforms."""
    from vggish_jax.models.musicnn import frontend as mf
    from vggish_jax.predict import default_tagger

    tagger = default_tagger()
    rows = []
    for w in waveforms:
        w = np.asarray(w)
        x = decode.from_int16(w).astype(np.float32) if np.issubdtype(w.dtype, np.integer) else w.astype(np.float32)
        if x.shape[0] < mf.min_samples():
            x = x[np.arange(mf.min_samples()) % max(1, x.shape[0])]
        rows.append(tagger.run(mf.patches(mf.log_mel(x)))["penultimate"])
    return features.mean_std(rows)


def fit_cell(feature_set: str, classifier: str, x_train: np.ndarray, y_train: np.ndarray, seed: int = 0):
    """Fit one model. It sees the training split and nothing else."""
    model = make_pipeline(feature_set, classifier, seed, n_train=len(y_train))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence / collinearity warnings from the fixed recipe
        model.fit(x_train, y_train)
    return model


def run_cell(feature_set: str, classifier: str, data: Data, seed: int = 0) -> dict:
    """Fit and score one cell. A model that cannot be fitted (e.g. QDA with more dimensions than clips per
    class, which old sklearn only warned about) is reported as failed with the reason, not dropped."""
    t0 = time.perf_counter()
    try:
        model = fit_cell(feature_set, classifier, data.x["train"], data.y["train"], seed)
    except (ValueError, np.linalg.LinAlgError) as e:
        return {"feature_set": feature_set, "classifier": classifier, "fit_seconds": time.perf_counter() - t0,
                "wall_seconds": time.perf_counter() - t0, "validation_accuracy": None, "test_accuracy": None,
                "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    fit_s = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = {s: model.predict(data.x[s]) for s in ("validation", "test")}
    return {"feature_set": feature_set, "classifier": classifier, "fit_seconds": fit_s,
            "wall_seconds": time.perf_counter() - t0,
            **_scores(pred, data)}


def _scores(pred: dict[str, np.ndarray], data: Data) -> dict:
    return {"validation_accuracy": float(np.mean(pred["validation"] == data.y["validation"])),
            "test_accuracy": float(np.mean(pred["test"] == data.y["test"])),
            "test_predictions": pred["test"].tolist()}


def run_jax_head(data: Data, label_names, seed: int = 0, meta: dict | None = None):
    from vggish_jax.classify import heads

    t0 = time.perf_counter()
    head = heads.train_head(data.x["train"], data.y["train"], data.x["validation"], data.y["validation"],
                            label_names, heads.HeadConfig(seed=seed), **(meta or {}))
    pred = {s: head.predict_proba_features(data.x[s]).argmax(-1) for s in ("validation", "test")}
    cell = {"feature_set": "mean_std", "classifier": "JAX-MLP", "fit_seconds": time.perf_counter() - t0,
            "wall_seconds": time.perf_counter() - t0,
            **_scores(pred, data), "best_epoch": head.info["best_epoch"]}
    return cell, head


def load_mels(data_dir: str, dataset: str, track_ids: dict[str, np.ndarray], key: str = "mel") -> dict[str, list[np.ndarray]]:
    """Log-mels (or `key`) from the built TFDS dataset, in the order of the extracted embeddings (by track_id)."""
    from vggish_jax.datasets import fma

    sources = fma.data_sources(fma.prepare(dataset, data_dir=data_dir, workers=0))
    out = {}
    for s in SPLITS:
        ds = sources[s]
        by_id = {}
        for i in range(len(ds)):
            ex = ds[i]
            if key not in ex:
                raise ValueError(f"{data_dir}: {dataset} stores no {key!r}; build and extract fma/small_waveform "
                                 f"for the musicnn feature set")
            by_id[int(ex["track_id"])] = np.asarray(ex[key])
        missing = [int(t) for t in track_ids[s] if int(t) not in by_id]
        if missing:
            raise ValueError(f"{data_dir}: {len(missing)} clips of the embeddings are not in the {s} split "
                             f"(e.g. {missing[:3]}); was it built from the same FMA?")
        out[s] = [by_id[int(t)] for t in track_ids[s]]
    return out


class IncompleteExtraction(RuntimeError):
    """The embeddings directory is from an extraction that did not finish."""


def check_complete(embeddings_dir: str, info: dict, allow_incomplete: bool, log) -> bool:
    """True if the extraction finished; refuse an unfinished one unless explicitly allowed (then warn)."""
    if info.get("complete") is True:
        return True
    path = os.path.join(embeddings_dir, store.INFO)
    state = "says \"complete\": false" if "complete" in info else "records no \"complete\": true"
    if not allow_incomplete:
        raise IncompleteExtraction(f"{path} {state}: the extraction did not finish, so a table would be built on "
                                   f"part of the clips; rerun the same `vggish-jax extract` command to complete "
                                   f"it, or pass --allow-incomplete to compare on what is there")
    log(f"warning: {path} {state}; comparing on an unfinished extraction (--allow-incomplete)")
    return False


def compare(embeddings_dir: str, out: str, *, feature_sets=FEATURE_SETS, classifiers=PAPER_CLASSIFIERS + EXTRA_CLASSIFIERS,
            data_dir: str | None = None, jobs: int = -1, seed: int = 0, save_head: bool = True,
            allow_incomplete: bool = False, log=lambda m: print(m, file=sys.stderr)) -> dict:
    """Run the table and write table.md, table.json and plots into `out`. Returns the JSON report.

    An unfinished extraction (info.json without "complete": true) is refused unless `allow_incomplete`;
    then the report and table say so.
    """
    from joblib import Parallel, delayed

    t_start = time.perf_counter()
    info = store.read_info(embeddings_dir)
    complete = check_complete(embeddings_dir, info, allow_incomplete, log)
    label_names = list(info["label_names"])
    splits = {s: store.load_split(embeddings_dir, s) for s in SPLITS}
    mels = waves = None
    ids = {s: splits[s].track_ids for s in SPLITS}
    dataset = info.get("dataset", "fma/small")
    if "mfcc" in feature_sets:
        if data_dir:
            mels = load_mels(data_dir, dataset, ids)
        else:
            log("mfcc: skipped (needs the TFDS dataset's log-mels: pass --data-dir)")
    if "musicnn" in feature_sets:
        if data_dir and dataset.endswith("_waveform"):
            waves = load_mels(data_dir, dataset, ids, key="waveform")
        else:
            log("musicnn: skipped (needs a *_waveform build, e.g. --dataset fma/small_waveform, and --data-dir)")
    data = build_features(splits, mels, waves)
    feature_sets = [f for f in feature_sets if f in data]
    sk = [c for c in classifiers if c != "JAX-MLP"]
    cells = [(f, c) for f in feature_sets for c in sk]
    log(f"{len(cells)} cells on {', '.join(f'{s} {len(splits[s])}' for s in SPLITS)} clips, jobs={jobs}")
    results = Parallel(n_jobs=jobs, verbose=0)(delayed(run_cell)(f, c, data[f], seed) for f, c in cells)
    head = None
    if "JAX-MLP" in classifiers and "mean_std" in data:
        spec = spec_lib.of_extraction(info, os.path.join(embeddings_dir, store.INFO))
        cell, head = run_jax_head(data["mean_std"], label_names, seed,
                                  {"final_relu": spec.final_relu, "weights": info.get("weights"), "spec": spec})
        results.append(cell)
    ok = [r for r in results if r["validation_accuracy"] is not None]
    best = max(ok, key=lambda r: r["validation_accuracy"])  # chosen on validation only
    report = {
        "embeddings": os.path.abspath(embeddings_dir), "dataset": info.get("dataset"),
        "extraction_complete": complete,
        "candidates": {s: v.get("candidates") for s, v in info.get("splits", {}).items()},
        "final_relu": info.get("final_relu"), "postprocess": info.get("postprocess"),
        "split_sizes": {s: len(splits[s]) for s in SPLITS}, "label_names": label_names, "seed": seed,
        "feature_sets": feature_sets, "classifiers": list(classifiers), "versions": _versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "jobs": jobs,
        "wall_seconds": time.perf_counter() - t_start,
        "best": {k: best[k] for k in ("feature_set", "classifier", "validation_accuracy", "test_accuracy")},
        "cells": [{k: v for k, v in r.items() if k != "test_predictions"} for r in results],
    }
    os.makedirs(out, exist_ok=True)
    atomic.write_json(os.path.join(out, "table.json"), report)
    atomic.write_text(os.path.join(out, "table.md"), render_markdown(report))
    _plots(out, best, splits["test"].labels, label_names)
    if head is not None and save_head:
        from vggish_jax.classify import heads
        heads.save_head(os.path.join(out, "head"), head)
    return report


def render_markdown(report: dict) -> str:
    fs = report["feature_sets"]
    cells = {(c["feature_set"], c["classifier"]): c for c in report["cells"]}
    lines = [f"# Genre classification: {report['dataset']} (final_relu={report['final_relu']}, "
             f"postprocess={report['postprocess']})", "",
             f"Splits: {report['split_sizes']}. Test accuracy, validation in parentheses; best on validation: "
             f"**{report['best']['classifier']} on {report['best']['feature_set']}** "
             f"(val {report['best']['validation_accuracy']:.4f}, test {report['best']['test_accuracy']:.4f}).", "",
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
            elif c["test_accuracy"] is None:
                row.append("failed")
            else:
                row.append(f"{c['test_accuracy']:.4f} ({c['validation_accuracy']:.4f})")
        lines.append(f"| {clf} | " + " | ".join(row) + " |")
    failed = [c for c in report["cells"] if c.get("error")]
    lines += [""] + [f"- failed: {c['classifier']} on {c['feature_set']}: {c['error']}" for c in failed]
    lines += ["", f"Total wall time {report['wall_seconds']:.1f} s with jobs={report['jobs']} on "
              f"{report['machine']['cpus']} CPUs."]
    return "\n".join(lines) + "\n"


def _plots(out: str, best: dict, y_test: np.ndarray, label_names: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    pred = np.asarray(best["test_predictions"])
    cm = confusion_matrix(y_test, pred, labels=range(len(label_names)))
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test confusion: {best['classifier']} on {best['feature_set']}")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "confusion_best.png"), dpi=120)
    plt.close(fig)
    per_genre = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(label_names)), per_genre)
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy (recall)")
    ax.set_title(f"per-genre accuracy: {best['classifier']} on {best['feature_set']}")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "per_genre_accuracy.png"), dpi=120)
    plt.close(fig)


def _versions() -> dict:
    import jax
    import sklearn
    return {"python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__,
            "jax": jax.__version__}




def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embeddings", required=True, help="directory written by `vggish-jax extract`")
    p.add_argument("--out", required=True, help="results directory (table.md, table.json, plots, head/)")
    p.add_argument("--data-dir", help="TFDS data dir of the same dataset, for the MFCC baseline")
    p.add_argument("--features", default=",".join(FEATURE_SETS), help="comma-separated feature sets")
    p.add_argument("--classifiers", default=",".join(PAPER_CLASSIFIERS + EXTRA_CLASSIFIERS))
    p.add_argument("--jobs", type=int, default=-1, help="parallel cells (-1: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-incomplete", action="store_true",
                   help="run on an unfinished extraction (info.json \"complete\": false); the table says so")


def run(args) -> int:
    fs = [f for f in args.features.split(",") if f]
    clfs = [c for c in args.classifiers.split(",") if c]
    unknown = [f for f in fs if f not in FEATURE_SETS] + [c for c in clfs if c not in PAPER_CLASSIFIERS + EXTRA_CLASSIFIERS]
    if unknown:
        raise ValueError(f"unknown feature sets/classifiers {unknown}; choose from {FEATURE_SETS} and "
                         f"{PAPER_CLASSIFIERS + EXTRA_CLASSIFIERS}")
    if args.jobs == 0:
        raise ValueError("--jobs 0 runs nothing; give a number of parallel cells, or -1 for all cores")
    from vggish_jax import preflight
    preflight.output_dir(args.out)  # before hours of fitting
    report = compare(args.embeddings, args.out, feature_sets=fs, classifiers=clfs, data_dir=args.data_dir,
                     jobs=args.jobs, seed=args.seed, allow_incomplete=args.allow_incomplete)
    print(render_markdown(report))
    print(f"wrote {args.out}/table.md, table.json, confusion_best.png, per_genre_accuracy.png")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
