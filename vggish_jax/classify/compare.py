"""The paper's comparison table: 13 classifiers (FMA's baseline recipe) x feature sets, plus better heads.

Every model is fitted on train only (scaler, PCA and classifier in one sklearn Pipeline). Feature sets: embedding
(the first 31 examples flattened: the median training clip length, 10 for AudioSet), embedding+pca128, mean_std,
frames, and mfcc / musicnn from an FMA TFDS build or the clips' audio files (classify.audio_features). Cells are
ranked on validation and the model picked by `CompareSettings.selection` (classify.selection); a CV-selected one,
or any with `refit`, is refitted on train + validation before test is scored once. A store without
train/validation/test is cross-validated (classify.cv): mean and std over K held-out folds.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings

import numpy as np

from vggish_jax import atomic
from vggish_jax.classify import audio_features, cv, features, metrics, selection
from vggish_jax.classify.tables import (class_counts, machine, metric_names, plot_results, render_markdown,
                                        versions)
from vggish_jax.pipeline import store

PAPER_CLASSIFIERS = ("LR", "kNN", "SVCrbf", "SVCpoly1", "linSVC1", "linSVC2", "DT", "RF", "AdaBoost", "MLP1",
                     "MLP2", "NB", "QDA")
EXTRA_CLASSIFIERS = ("HGB", "JAX-MLP", "JAX-frames")
FEATURE_SETS = ("embedding", "embedding+pca128", "mean_std", "mfcc", "musicnn", "frames")
JAX_HEADS = {"JAX-MLP": "mean_std", "JAX-frames": "frames"}  # the one feature set each JAX head runs on
HEAD_DIRS = {"JAX-MLP": "head", "JAX-frames": "head_frames"}  # where compare saves each (refitted: <dir>_refit)
SPLITS = ("train", "validation", "test")


def make_classifier(name: str, seed: int = 0, n_train: int | None = None):
    """FMA's baseline settings (mdeff/fma): sklearn defaults except where noted; SVC gamma pinned to 'auto';
    kNN's 200 neighbours capped at the training-set size (toy data)."""
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


def make_pipeline(feature_set: str, classifier: str, seed: int = 0, n_train: int | None = None,
                  multilabel: bool = False):
    """StandardScaler (+ PCA to 128, fewer only on toy data) + classifier (one-vs-rest when multi-label)."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [("scale", StandardScaler())]
    if feature_set.endswith("+pca128"):
        steps += [("pca", PCA(min(128, (n_train or 129) - 1), random_state=seed))]
    clf = make_classifier(classifier, seed, n_train)
    if multilabel:
        from sklearn.multiclass import OneVsRestClassifier
        clf = OneVsRestClassifier(clf)
    return Pipeline(steps + [("clf", clf)])


@dataclasses.dataclass
class Data:
    """Feature matrices per split for one feature set; labels per split."""
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    @property
    def multilabel(self) -> bool:
        return np.ndim(next(iter(self.y.values()))) == 2


def build_features(embeddings: dict[str, store.Split], mels: dict[str, list[np.ndarray]] | None = None,
                   waveforms: dict[str, list[np.ndarray]] | None = None,
                   computed: dict[str, dict[str, np.ndarray]] | None = None) -> dict[str, Data]:
    """{feature_set: Data} from per-split embeddings, log-mels (mfcc), 16 kHz waveforms (musicnn) and `computed`
    (feature set -> split -> matrix, e.g. from the audio files)."""
    names = list(embeddings)
    y = {s: embeddings[s].labels for s in names}
    # The flattened length: the training clips' median length (all clips' without a train split), at most 31.
    clips = embeddings["train"].embeddings if "train" in embeddings else [c for s in names for c in
                                                                          embeddings[s].embeddings]
    n = int(min(features.EXAMPLES_PER_CLIP, max(1, np.median([len(c) for c in clips])))) if clips else 1
    flat = {s: features.flatten(embeddings[s].embeddings, n) for s in names}
    out = {"embedding": Data(flat, y), "embedding+pca128": Data(flat, y),
           "frames": Data({s: embeddings[s].embeddings for s in names}, y),
           "mean_std": Data({s: features.mean_std(embeddings[s].embeddings) for s in names}, y)}
    if mels is not None:
        out["mfcc"] = Data({s: np.stack([features.mfcc_stats(m) for m in mels[s]]) for s in names}, y)
    if waveforms is not None:
        out["musicnn"] = Data({s: audio_features.musicnn_features(waveforms[s]) for s in names}, y)
    out.update({name: Data(x, y) for name, x in (computed or {}).items()})
    return out


def fit_cell(feature_set: str, classifier: str, x_train: np.ndarray, y_train: np.ndarray, seed: int = 0):
    """Fit one model. It sees the training split and nothing else."""
    model = make_pipeline(feature_set, classifier, seed, n_train=len(y_train), multilabel=np.ndim(y_train) == 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence / collinearity warnings from the fixed recipe
        model.fit(x_train, y_train)
    return model


def run_cell(feature_set: str, classifier: str, data: Data, seed: int = 0,
             evaluate: tuple[str, ...] = ("validation", "test")) -> dict:
    """Fit and score one cell on the `evaluate` splits; one that cannot be fitted (e.g. QDA with more dimensions
    than clips per class) is reported as failed with the reason, not dropped."""
    t0 = time.perf_counter()
    try:
        model = fit_cell(feature_set, classifier, data.x["train"], data.y["train"], seed)
    except (ValueError, np.linalg.LinAlgError) as e:
        return {**_timed(feature_set, classifier, t0), **dict.fromkeys(_metric_keys(data.multilabel)),
                "validation_score": None, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    fit_s = time.perf_counter() - t0
    out = {s: predict(model, data.x[s], data.multilabel) for s in evaluate}
    return {**_timed(feature_set, classifier, t0, fit_s), **scores(out, data)}


def _timed(feature_set: str, classifier: str, t0: float, fit_s: float | None = None) -> dict:
    """A cell's name and its fit and wall seconds since `t0` (fit: all of it unless `fit_s`)."""
    wall = time.perf_counter() - t0
    return {"feature_set": feature_set, "classifier": classifier, "fit_seconds": wall if fit_s is None else fit_s,
            "wall_seconds": wall}


def predict(model, x: np.ndarray, multilabel: bool) -> np.ndarray:
    """Class indices, or (multi-label) [clips, classes] scores: probabilities where the model has them, else
    margins."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not multilabel:
            return model.predict(x)
        try:
            return np.asarray(model.predict_proba(x))
        except AttributeError:  # SVC without probability=True, LinearSVC
            return np.asarray(model.decision_function(x))


def _metric_keys(multilabel: bool) -> tuple[str, ...]:
    return tuple(f"{s}_{m}" for m in metric_names(multilabel) for s in ("validation", "test"))


def scores(out: dict[str, np.ndarray], data: Data) -> dict:
    """Metrics of class indices (single-label) or per-class scores (multi-label) on the splits in `out`;
    `validation_score` (accuracy or mAP) is what selection compares."""
    r = {f"{s}_{m}": v for s in out for m, v in metrics.score_pair(data.y[s], out[s]).items()}
    r["validation_score"] = r.get(f"validation_{metric_names(data.multilabel)[0]}")
    r["test_predictions"] = np.asarray(out["test"]).tolist()
    return r


def run_head(classifier: str, data: Data, label_names, seed: int = 0, meta: dict | None = None, cfg=None,
             log=None, extra=None):
    """A JAX head as a table cell: JAX-MLP (classify.heads) or the frame-level ensemble (frame_head, `cfg`);
    `extra` (clips, soft targets) only trains JAX-frames. Returns (cell, trained head)."""
    from vggish_jax.classify import frame_head, heads

    t0 = time.perf_counter()
    if classifier == "JAX-MLP":
        if data.multilabel:
            raise ValueError("JAX-MLP is single-label; use JAX-frames for a multi-label store")
        head = heads.train_head(data.x["train"], data.y["train"], data.x["validation"], data.y["validation"],
                                label_names, heads.HeadConfig(seed=seed), **(meta or {}))
        probs = {s: head.predict_proba_features(data.x[s]) for s in ("validation", "test")}
        more = {"best_epoch": head.info["best_epoch"]}
    else:
        clips, y = with_extra(data.x["train"], data.y["train"], None if data.multilabel else extra, len(label_names))
        head = frame_head.train_frame_head(clips, y, data.x["validation"], data.y["validation"], label_names,
                                           cfg or frame_head.FrameHeadConfig(seed=seed), multilabel=data.multilabel,
                                           log=log, **(meta or {}))
        probs = {s: head.predict_proba(data.x[s]) for s in ("validation", "test")}
        more = {"best_epochs": [m["best_epoch"] for m in head.info["members"]], "train_clips": len(clips)}
    out = probs if data.multilabel else {s: p.argmax(-1) for s, p in probs.items()}
    return {**_timed(JAX_HEADS[classifier], classifier, t0), **scores(out, data), **more}, head


def with_extra(clips, y, extra, n_classes: int):
    """Training clips and targets plus `extra` (clips, soft target rows): one-hot rows for the labelled clips."""
    from vggish_jax.classify import frame_head

    if extra is None or not len(extra[0]):
        return list(clips), y
    return list(clips) + list(extra[0]), np.concatenate([frame_head.targets_of(y, n_classes, False), extra[1]])


def fit_predict(cell: dict, d: Data, x, y, x_test, trained=None, seed: int = 0, extra=None, log=None):
    """(output on `x_test`, refitted head or None) of `cell`'s recipe fitted on (x, y); a JAX head (`trained`)
    trains for the epochs validation chose. Output: class indices, or (multi-label) per-class scores."""
    from vggish_jax.classify import frame_head, heads

    if cell["classifier"] == "JAX-frames":
        x, y = with_extra(x, y, None if d.multilabel else extra, len(trained.label_names))
        head = frame_head.refit(trained, x, y, log=log)
        p = head.predict_proba(x_test)
        return (p if d.multilabel else p.argmax(-1)), head
    if cell["classifier"] == "JAX-MLP":
        head = heads.refit(trained, x, y)
        return head.predict_proba_features(x_test).argmax(-1), head
    return predict(fit_cell(cell["feature_set"], cell["classifier"], x, y, seed), x_test, d.multilabel), None


def refit_best(best: dict, data: dict, trained: dict, label_names, seed: int = 0, extra=None, log=None):
    """The chosen model refitted on train + validation, test scored once. Returns (cell, refitted head or None)."""
    d, t0 = data[best["feature_set"]], time.perf_counter()
    x, y = cv.pool(d.x, d.y, ["train", "validation"])
    pred, head = fit_predict(best, d, x, y, d.x["test"], trained.get(HEAD_DIRS.get(best["classifier"])), seed, extra,
                             log)
    cell = {"feature_set": best["feature_set"], "classifier": best["classifier"],
            "train_clips": head.info.get("train_clips", len(x)) if head else len(x),
            "fit_seconds": time.perf_counter() - t0, **scores({"test": pred}, d)}
    cell.pop("validation_score")
    return cell, head


def load_mels(data_dir: str, dataset: str, track_ids: dict[str, np.ndarray], key: str = "mel"
              ) -> dict[str, list[np.ndarray]]:
    """Log-mels (or `key`) from the built TFDS dataset, in the order of the extracted embeddings (by track_id)."""
    from vggish_jax.datasets import fma

    sources = fma.data_sources(fma.prepare(dataset, data_dir=data_dir, workers=0))
    out = {}
    for s in track_ids:
        ds = sources[s]
        if len(ds) and key not in ds[0]:
            raise ValueError(f"{data_dir}: {dataset} stores no {key!r}; build and extract fma/small_waveform "
                             f"for the musicnn feature set")
        by_id = {int(ex["track_id"]): np.asarray(ex[key]) for ex in map(ds.__getitem__, range(len(ds)))}
        missing = [int(t) for t in track_ids[s] if int(t) not in by_id]
        if missing:
            raise ValueError(f"{data_dir}: {len(missing)} clips of the embeddings are not in the {s} split "
                             f"(e.g. {missing[:3]}); was it built from the same FMA?")
        out[s] = [by_id[int(t)] for t in track_ids[s]]
    return out


def _from_files(out: str, info: dict, splits: dict, sets: list[str], settings, log):
    """audio_features.compute's Result for the sets computed from audio files, or None (a store without files
    logs why)."""
    if not sets:
        return None
    try:
        # a store written without keys has none, or (written directly) an empty array: no clip is named
        keys = {s: sp.keys if sp.keys is not None and len(sp.keys) == len(sp) else None for s, sp in splits.items()}
        files = audio_features.store_files(info, keys, data_dir=settings.data_dir, manual_dir=settings.manual_dir)
    except audio_features.NoAudio as e:
        log(f"{', '.join(sets)}: skipped ({e})")
        return None
    r = audio_features.compute(files, sets, cache_dir=os.path.join(out, "features"),
                               workers=(os.cpu_count() or 1) if settings.jobs < 0 else settings.jobs, log=log)
    for s in r.skipped:
        log(s.line())
    return r


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
                                   f"it, or set allow_incomplete = true in a --config file to compare on what is "
                                   f"there")
    log(f"warning: {path} {state}; comparing on an unfinished extraction (allow_incomplete)")
    return False


@dataclasses.dataclass(frozen=True)
class CompareSettings:
    """How `compare` builds a table; every field has the CLI's default. `folds` K cross-validates (None: the
    store's split, or DEFAULT_K folds without one); `data_dir` an FMA TFDS build, `manual_dir` the mp3s of a
    --from-audio store; `frame_head` None: FrameHeadConfig(seed=seed); `extra_train` (clips, soft target rows)
    trains JAX-frames only; `jobs` -1: all cores; `selection` "auto" (CV among the `finalists` best over
    `selection_folds` folds when validation has < 1,000 clips, else the validation winner), "cv" or "validation".
    """
    feature_sets: tuple[str, ...] = FEATURE_SETS
    classifiers: tuple[str, ...] = PAPER_CLASSIFIERS + EXTRA_CLASSIFIERS
    folds: int | None = None
    refit: bool = False
    seed: int = 0
    data_dir: str | None = None
    manual_dir: str | None = None
    frame_head: object = None  # frame_head.FrameHeadConfig | None (not imported here: it pulls in JAX)
    extra_train: tuple | None = None
    jobs: int = -1
    allow_incomplete: bool = False
    selection: str = "auto"
    finalists: int = 3
    selection_folds: int = 5

    def __post_init__(self):
        object.__setattr__(self, "feature_sets", tuple(self.feature_sets))
        object.__setattr__(self, "classifiers", tuple(self.classifiers))
        known = PAPER_CLASSIFIERS + EXTRA_CLASSIFIERS
        unknown = [f for f in self.feature_sets if f not in FEATURE_SETS] + \
                  [c for c in self.classifiers if c not in known]
        if unknown:
            raise ValueError(f"unknown feature sets/classifiers {unknown}; choose from {', '.join(FEATURE_SETS)} "
                             f"and {', '.join(known)}")
        if self.jobs == 0:
            raise ValueError("jobs = 0 runs nothing; give a number of parallel cells, or -1 for all cores")
        if self.selection not in selection.PROTOCOLS:
            raise ValueError(f"selection = {self.selection!r}: choose from {', '.join(map(repr, selection.PROTOCOLS))}")
        if self.finalists < 1 or self.selection_folds < 2:
            raise ValueError(f"finalists = {self.finalists}, selection_folds = {self.selection_folds}: selection "
                             f"needs at least 1 finalist and 2 folds")
        if self.folds is not None and self.folds < 2:
            raise ValueError(f"--cv {self.folds}: cross-validation needs K >= 2 folds; leave --cv out to use the "
                             f"store's train/validation/test split")


@dataclasses.dataclass
class _Inputs:
    """A store loaded for one comparison: the clips per split, every feature set's matrices, table.json's fields
    about the store and the run, and what a trained JAX head records about its embeddings (`meta`)."""
    store_dir: str
    info: dict
    splits: dict[str, store.Split]
    data: dict[str, Data]
    feature_sets: list[str]  # those asked for that could be built
    fields: dict
    meta: dict
    started: float

    @property
    def label_names(self) -> list[str]:
        return list(self.info["label_names"])


def compare(embeddings_dir: str, out: str, settings: CompareSettings | None = None, log=None) -> dict:
    """Write table.md, table.json and plots into `out`; returns the report. An unfinished extraction is refused
    unless `settings.allow_incomplete`. JAX heads are saved as out/head, out/head_frames (refitted: <head>_refit).
    `log` gets progress lines (default: stderr)."""
    settings, started = settings or CompareSettings(), time.perf_counter()
    log = log or (lambda m: print(m, file=sys.stderr))
    info = store.read_info(embeddings_dir)
    complete = check_complete(embeddings_dir, info, settings.allow_incomplete, log)
    names = cv.store_splits(embeddings_dir, info)
    k = settings.folds
    if k is None and not set(SPLITS) <= set(names):
        k = cv.DEFAULT_K
        log(f"{embeddings_dir}: splits {', '.join(names)}, no train/validation/test: running {k}-fold "
            f"cross-validation (--cv {k}){' on all but test' if 'test' in names else ''}")
    used = SPLITS if k is None else [s for s in names if s != "test"]  # cross-validated: test is left untouched
    splits = {s: store.load_split(embeddings_dir, s) for s in used}
    _require_two_classes(embeddings_dir, info, splits)
    inputs = _load_features(embeddings_dir, info, complete, splits, out, settings, log, started)
    if k is not None:
        return _compare_cv(inputs, out, k, settings, log)
    return _compare_split(inputs, out, settings, log)


def _require_two_classes(embeddings_dir: str, info: dict, splits: dict[str, store.Split]) -> None:
    """A store whose clips are all of one class cannot be classified (every classifier needs two)."""
    y = np.concatenate([np.asarray(sp.labels) for sp in splits.values()])
    present = np.unique(y) if y.ndim == 1 else np.flatnonzero(y.any(0))
    if len(present) < 2:
        names = [str(info.get("label_names", [])[i]) for i in present if i < len(info.get("label_names", []))]
        raise ValueError(f"{embeddings_dir}: its {len(y)} clips are all of one class ({', '.join(names) or 'none'}); "
                         f"a classifier needs clips of at least 2 classes: extract a dataset with two or more "
                         f"classes (e.g. a folder with one subfolder of audio per class)")


def _load_features(store_dir: str, info: dict, complete: bool, splits: dict[str, store.Split], out: str,
                   settings: CompareSettings, log, started: float) -> _Inputs:
    """The store's clips with every asked-for feature set that can be built (from an FMA TFDS build or the audio
    files)."""
    want = settings.feature_sets
    mels = waves = None
    ids = {s: sp.track_ids for s, sp in splits.items()}
    dataset = info.get("dataset", "fma/small")
    tfds = settings.data_dir and str(dataset).startswith("fma/") and info.get("source", "tfds") == "tfds"
    from_files = []  # feature sets computed from the clips' audio files
    if "mfcc" in want:
        if tfds:
            mels = load_mels(settings.data_dir, dataset, ids)
        else:
            from_files.append("mfcc")
    if "musicnn" in want:
        if tfds and dataset.endswith("_waveform"):
            waves = load_mels(settings.data_dir, dataset, ids, key="waveform")
        elif tfds:
            log(f"musicnn: skipped ({dataset} stores log-mels, not audio: build and extract {dataset}_waveform)")
        else:
            from_files.append("musicnn")
    r = _from_files(out, info, splits, from_files, settings, log)
    files = {"skipped": [], "audio_features": {}}
    if r is not None:
        for s, sp in splits.items() if r.skipped else ():  # clips whose audio did not decode leave every set
            k = r.keep[s]
            splits[s] = store.Split(sp.track_ids[k], sp.labels[k], cv.take(sp.embeddings, np.flatnonzero(k)),
                                    None if sp.keys is None else sp.keys[k])
        files = {"skipped": [d.to_dict() for d in r.skipped],
                 "audio_features": {"from_files": from_files, "decoded": r.decoded, "cached": r.cached}}
    data = build_features(splits, mels, waves, r and r.x)
    built, spec = [f for f in want if f in data], store.spec_of(info, os.path.join(store_dir, store.INFO))
    fields = {"embeddings": os.path.abspath(store_dir), "dataset": info.get("dataset"), "extraction_complete": complete,
              "final_relu": info.get("final_relu"), "postprocess": info.get("postprocess"),
              "embedding_spec": spec.to_dict(), "label_names": list(info["label_names"]), "seed": settings.seed,
              "feature_sets": list(built), "classifiers": list(settings.classifiers), "versions": versions(),
              "machine": machine(), "jobs": settings.jobs, **files}
    meta = {"final_relu": spec.final_relu, "weights": info.get("weights"), "spec": spec}
    return _Inputs(store_dir, info, splits, data, built, fields, meta, started)


def _public(cell: dict, y_test: np.ndarray, n_classes: int) -> dict:
    """A cell as table.json keeps it: no predictions; single-label with its test confusion (rows true class)."""
    r = {k: v for k, v in cell.items() if k != "test_predictions"}
    if cell.get("test_predictions") is not None and np.ndim(y_test) == 1:
        r["test_confusion"] = metrics.confusion(y_test, cell["test_predictions"], n_classes).tolist()
    return r


def _compare_split(inputs: _Inputs, out: str, settings: CompareSettings, log) -> dict:
    """`compare` on the store's train/validation/test split: every cell fitted on train, scored on validation and
    test; JAX heads saved by folder name."""
    from joblib import Parallel, delayed

    data, fs, clfs, seed = inputs.data, inputs.feature_sets, settings.classifiers, settings.seed
    cells = [(f, c) for f in fs if f != "frames" for c in clfs if c not in JAX_HEADS]
    log(f"{len(cells)} cells on {', '.join(f'{s} {len(inputs.splits[s])}' for s in SPLITS)} clips, "
        f"jobs={settings.jobs}")
    results = Parallel(n_jobs=settings.jobs, verbose=0)(delayed(run_cell)(f, c, data[f], seed) for f, c in cells)
    trained = {}
    for head, f in JAX_HEADS.items():
        if head in clfs and f in fs and not (head == "JAX-MLP" and data[f].multilabel):
            cell, trained[HEAD_DIRS[head]] = run_head(head, data[f], inputs.label_names, seed, inputs.meta,
                                                      settings.frame_head, log, settings.extra_train)
            results.append(cell)
    best = max([r for r in results if r.get("validation_score") is not None],
               key=lambda r: r["validation_score"])  # best on validation
    splits, names = inputs.splits, inputs.label_names
    multilabel = np.ndim(splits["test"].labels) == 2
    y_test = splits["test"].labels
    pooled = {s: splits[s] for s in ("train", "validation")}
    by_classifier = {c: trained[d] for c, d in HEAD_DIRS.items() if d in trained}
    chosen = selection.select(results, inputs.data, by_classifier, cv.pooled_groups(inputs.info, pooled), settings,
                              len(splits["validation"]), log, fit_predict)
    report = {
        **inputs.fields, "multilabel": multilabel, "metric": metrics.names(multilabel)[0],
        "candidates": {s: v.get("candidates") for s, v in inputs.info.get("splits", {}).items()
                       if isinstance(v, dict)},
        "split_sizes": {s: len(splits[s]) for s in SPLITS},
        "class_counts": {s: class_counts(splits[s].labels, len(names)).tolist() for s in SPLITS},
        "best": {k: best[k] for k in ("feature_set", "classifier", "validation_score", *_metric_keys(multilabel))},
        "selection": chosen,
        "cells": [_public(r, y_test, len(names)) for r in results]}
    final = next(r for r in results if (r["classifier"], r["feature_set"]) ==
                 (chosen["classifier"], chosen["feature_set"]))
    if settings.refit or chosen["protocol"] == "cv":
        final, head = refit_best(final, inputs.data, trained, names, settings.seed, settings.extra_train, log)
        report["refit"] = _public(final, y_test, len(names))
        if head is not None:
            trained[HEAD_DIRS[final["classifier"]] + "_refit"] = head
    report["wall_seconds"] = time.perf_counter() - inputs.started
    _write(out, report, final, y_test)
    from vggish_jax.classify import frame_head, heads
    for name, head in trained.items():
        (frame_head.save if name.startswith("head_frames") else heads.save_head)(os.path.join(out, name), head)
    return report


def _write(out: str, report: dict, best: dict, y_held_out: np.ndarray, held_out: str = "test") -> None:
    """table.json, table.md and the figures of the best cell's `held_out` predictions."""
    os.makedirs(out, exist_ok=True)
    atomic.write_json(os.path.join(out, "table.json"), report)
    atomic.write_text(os.path.join(out, "table.md"), render_markdown(report))
    plot_results(out, best, y_held_out, report["label_names"], report, held_out=held_out)


def _fold_cell(feature_set: str, classifier: str, x, y: np.ndarray, train: np.ndarray, test: np.ndarray,
               seed: int) -> dict:
    """One sklearn cell on one fold: fitted on the fold's training part, scored on its held-out part."""
    data = Data({"train": cv.take(x, train), "test": cv.take(x, test)}, {"train": y[train], "test": y[test]})
    return run_cell(feature_set, classifier, data, seed, evaluate=("test",))


def _compare_cv(inputs: _Inputs, out: str, k: int, settings: CompareSettings, log) -> dict:
    """`compare` on K folds of the pooled splits (classify.cv); cells as mean ± std of their per-fold runs. JAX heads
    early-stop on an inner part of each fold's train (none is saved)."""
    from joblib import Parallel, delayed

    store_dir, info, splits = inputs.store_dir, inputs.info, inputs.splits
    plan = cv.make_plan(store_dir, info, splits, k, settings.seed)
    fs, clfs, seed = inputs.feature_sets, settings.classifiers, settings.seed
    pooled = {f: cv.pool(inputs.data[f].x, inputs.data[f].y, plan.names) for f in fs}
    cells = [(f, c) for f in fs if f != "frames" for c in clfs if c not in JAX_HEADS]
    grouped = f" grouped by {cv.n_groups(plan.groups)} groups" if plan.groups is not None else ""
    log(f"{k}-fold cross-validation{grouped} of {len(cells)} cells on {len(plan.labels)} clips "
        f"({', '.join(plan.names)}), jobs={settings.jobs}")
    flat = Parallel(n_jobs=settings.jobs, verbose=0)(delayed(_fold_cell)(f, c, *pooled[f], tr, te, seed)
                                                     for f, c in cells for tr, te in plan.folds)
    runs = {fc: flat[i * k:(i + 1) * k] for i, fc in enumerate(cells)}
    for head, f in JAX_HEADS.items():
        if head in clfs and f in fs and not (head == "JAX-MLP" and plan.multilabel):
            runs[(f, head)] = [run_head(head, Data(*cv.head_fold_data(*pooled[f], tr, te, plan)), inputs.label_names,
                                        seed, inputs.meta, settings.frame_head, log)[0] for tr, te in plan.folds]
    other = {s: store.load_split(store_dir, s).labels for s in cv.store_splits(store_dir, info)
             if s not in splits}  # not used, only counted: the class balance covers the whole store
    labels = {**{s: sp.labels for s, sp in splits.items()}, **other}
    report = {**inputs.fields,
              "class_counts": {s: class_counts(y, len(inputs.label_names)).tolist() for s, y in labels.items()}}
    report, best = cv.finish_report(report, plan, runs, {s: len(y) for s, y in other.items()})
    report["wall_seconds"] = time.perf_counter() - inputs.started
    pred = cv.pooled_predictions(runs[(best["feature_set"], best["classifier"])], plan)
    _write(out, report, {**best, "test_predictions": pred}, plan.labels, held_out=f"held-out ({k} folds pooled)")
    return report
