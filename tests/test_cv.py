"""`compare --cv K`: stratified and grouped folds, and the cross-validated table against sklearn's own
cross_val_score on the same folds' recipe."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import settings_toml, tone_mix
from vggish_jax import cli
from vggish_jax.classify import compare as cc, cv
from vggish_jax.pipeline import store

CLASSES = ["a", "b", "c", "d"]


def write_store(root, splits, sep=0.6, seed=0, groups=None):
    """A store with planted, overlapping classes: splits = {name: clips per class}; frames around a class centre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(CLASSES), 128)) * sep
    for split, per_class in splits.items():
        labels = np.repeat(np.arange(len(CLASSES)), per_class)
        embs = [(centres[c] + rng.normal(size=(int(rng.integers(8, 12)), 128))).astype(np.float32) for c in labels]
        store.write_shard(store.shard_path(str(root), split, 0), np.arange(len(labels)), labels, embs)
    info = {"label_names": CLASSES, "final_relu": True, "postprocess": False, "dataset": "synthetic",
            "weights": None, "complete": True}
    store.write_info(str(root), {**info, **({"groups": groups} if groups else {})})
    return str(root)


def mean_std(clips):
    """The pooled features, recomputed here with NumPy: mean then std over each clip's frames."""
    return np.stack([np.concatenate([c.mean(0), c.std(0)]) for c in clips])


def test_folds_are_stratified_and_hold_out_every_clip_once():
    counts = np.array([23, 17, 10, 31])
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(4), counts))
    k = 5
    got = cv.folds(labels, k, seed=3)
    assert len(got) == k
    held = np.concatenate([te for _, te in got])
    np.testing.assert_array_equal(np.sort(held), np.arange(len(labels)))  # each clip held out exactly once
    for tr, te in got:
        assert not set(tr) & set(te) and len(tr) + len(te) == len(labels)
        share = np.bincount(labels[te], minlength=4)
        assert np.all(np.abs(share - counts / k) < 1), share  # within one clip of n_c / K


def test_grouped_folds_keep_every_group_in_one_fold():
    rng = np.random.default_rng(1)
    groups = np.array([f"artist{g}" for g in rng.integers(0, 30, 200)])
    labels = rng.integers(0, 3, 200)
    got = cv.folds(labels, 4, groups=groups, seed=0)
    np.testing.assert_array_equal(np.sort(np.concatenate([te for _, te in got])), np.arange(200))
    fold_of = {}
    for j, (tr, te) in enumerate(got):
        assert not set(groups[tr]) & set(groups[te])
        for g in set(groups[te]):
            assert fold_of.setdefault(g, j) == j  # no group in two folds
    assert set(fold_of) == set(groups)
    # the inner validation part of a fold is grouped the same way
    tr = got[0][0]
    fit, val = cv.inner_split(labels[tr], 4, groups[tr], seed=0)
    assert not set(groups[tr][fit]) & set(groups[tr][val])
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, val])), np.arange(len(tr)))
    # a clip without a group ('') is a group of its own: it may sit in any fold
    loose = np.where(np.arange(200) % 2 == 0, groups, "")
    assert len(cv.folds(labels, 4, groups=loose)) == 4


def test_fold_errors_say_what_to_use_instead():
    labels = np.repeat(np.arange(3), [6, 6, 3])
    with pytest.raises(cv.FoldError, match=r"class 'z' has only 3 clips, fewer than the 5 folds; use --cv 3 or fewer"):
        cv.folds(labels, 5, label_names=["x", "y", "z"])
    groups = np.array(list("aabbccddee") + list("ff") + list("ggh"))
    with pytest.raises(cv.FoldError, match=r"needs at least 10 groups, but the clips come from 8 groups .*use --cv 8"):
        cv.folds(labels, 10, groups=groups)
    with pytest.raises(cv.FoldError, match="K >= 2"):
        cv.folds(labels, 1)
    # multi-label: stratified on each clip's rarest class, every clip still held out once
    hot = (np.random.default_rng(0).random((60, 4)) < 0.4).astype(np.uint8)
    got = cv.folds(hot, 3)
    np.testing.assert_array_equal(np.sort(np.concatenate([te for _, te in got])), np.arange(60))


def test_compare_cv_equals_sklearn_cross_val_score(tmp_path):
    """The oracle: sklearn's cross_val_score with the same recipe (StandardScaler + LogisticRegression) on
    StratifiedKFold(K, shuffle, seed) over train+validation; the test split is left out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root = write_store(tmp_path / "emb", {"train": 12, "validation": 4, "test": 4}, sep=0.08)
    out = tmp_path / "cv"
    report = cc.compare(root, str(out),
                        cc.CompareSettings(feature_sets=("mean_std",), classifiers=("LR", "NB"), jobs=1, folds=4),
                        log=lambda m: None)
    pooled = [store.load_split(root, s) for s in ("train", "validation")]
    x = mean_std([c for p in pooled for c in p.embeddings])
    y = np.concatenate([p.labels for p in pooled])
    cells = {c["classifier"]: c for c in report["cells"]}
    for name, clf in (("LR", LogisticRegression()), ("NB", GaussianNB())):
        for metric, scoring in (("accuracy", "accuracy"), ("macro_f1", "f1_macro")):
            want = cross_val_score(make_pipeline(StandardScaler(), clf), x, y, scoring=scoring,
                                   cv=StratifiedKFold(4, shuffle=True, random_state=0))
            np.testing.assert_allclose(cells[name][f"{metric}_folds"], want, atol=1e-6)
            assert cells[name][f"{metric}_mean"] == pytest.approx(want.mean())
            assert cells[name][f"{metric}_std"] == pytest.approx(want.std())
    assert 0.3 < cells["LR"]["accuracy_mean"] < 1  # overlapping classes: neither chance nor solved
    best = max(report["cells"], key=lambda c: c["accuracy_mean"])
    assert report["best"]["classifier"] == best["classifier"]
    assert report["cv"]["not_used"] == {"test": 16} and report["split_sizes"] == {"train": 48, "validation": 16}
    assert report["class_counts"]["test"] == [4] * 4  # the class balance covers the whole store
    table = (out / "table.md").read_text()
    assert "the test split (16 clips) is not used" in table and "optimistic" in table
    lr = cells["LR"]
    assert f"{lr['accuracy_mean']:.4f} ± {lr['accuracy_std']:.4f}" in table
    assert json.loads((out / "table.json").read_text())["cv"]["fold_sizes"] == [16] * 4
    for png in ("confusion_best.png", "class_balance.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_store_without_splits_is_cross_validated_by_default(tmp_path):
    root = write_store(tmp_path / "emb", {"all": 10}, sep=2.0)
    lines = []
    report = cc.compare(root, str(tmp_path / "out"),
                        cc.CompareSettings(feature_sets=("mean_std",), classifiers=("LR",), jobs=1), log=lines.append)
    assert any("no train/validation/test: running 5-fold cross-validation (--cv 5)" in m for m in lines)
    assert report["cv"]["k"] == 5 and report["cv"]["not_used"] == {} and report["cv"]["fold_sizes"] == [8] * 5
    assert report["cells"][0]["accuracy_mean"] >= 0.9  # well separated classes


def test_cli_cv_errors_are_one_line(tmp_path, capsys):
    root = write_store(tmp_path / "emb", {"all": 10})
    args = ["compare", "--embeddings", root, "--out", str(tmp_path / "out"), "--features", "mean_std",
            "--classifiers", "LR", "--config", settings_toml(tmp_path, "jobs = 1\n")]
    assert cli.main(args + ["--cv", "1"]) == 2
    assert "--cv 1: cross-validation needs K >= 2 folds" in capsys.readouterr().err
    assert cli.main(args + ["--cv", "11"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{root}: --cv 11: class 'a' has only 10 clips, fewer than the 11 folds; use --cv 10" in err
    no_labels = write_store(tmp_path / "nolabels", {"all": 10})
    info = store.read_info(no_labels)
    store.write_info(no_labels, {**info, "label_names": []})  # a folder without class subfolders
    assert cli.main(["compare", "--embeddings", no_labels, *args[3:], "--cv", "2"]) == 2
    assert "has no class labels" in capsys.readouterr().err


@pytest.mark.slow  # ~20 s: two JAX heads trained (and compiled) per fold
def test_jax_heads_early_stop_on_an_inner_part_of_each_fold(tmp_path):
    from vggish_jax.classify import frame_head

    root = write_store(tmp_path / "emb", {"all": 8}, sep=2.0)
    report = cc.compare(root, str(tmp_path / "out"),
                        cc.CompareSettings(feature_sets=("mean_std", "frames"),
                                           classifiers=("JAX-MLP", "JAX-frames"), jobs=1, folds=2,
                                           frame_head=frame_head.FrameHeadConfig(members=1, max_epochs=10, patience=3)),
                        log=lambda m: None)
    cells = {c["classifier"]: c for c in report["cells"]}
    assert set(cells) == {"JAX-MLP", "JAX-frames"}
    for c in cells.values():
        assert len(c["accuracy_folds"]) == 2 and c["accuracy_mean"] >= 0.75, c  # chance is 0.25
    assert not (tmp_path / "out" / "head").exists()  # one head per fold: none is saved


@pytest.fixture(scope="module")
def csv_store(tmp_path_factory, small_weights_dir):
    """A labels CSV (path,label,group) of 18 short tones, 3 classes, 9 artists, embedded by the small VGGish."""
    from conftest import run_extract

    root = tmp_path_factory.mktemp("csv")
    rows = []
    for i in range(18):
        c = i % 3
        name = f"clip{i:02d}.wav"
        sf.write(root / name, tone_mix(1.0, 16000, seed=100 * c + i), 16000)
        rows.append((name, ["x", "y", "z"][c], f"artist{i // 2}"))
    (root / "labels.csv").write_text("path,label,group\n" + "".join(",".join(r) + "\n" for r in rows))
    out = str(root / "emb")
    run_extract(None, labels=str(root / "labels.csv"), out=out, weights=small_weights_dir, workers=0, progress=False,
                log=lambda m: None)
    return out, {str(root / r[0]): r[2] for r in rows}


def test_compare_cv_keeps_a_csv_group_in_one_fold(csv_store, tmp_path):
    emb, group_of = csv_store
    report = cc.compare(emb, str(tmp_path / "out"),
                        cc.CompareSettings(feature_sets=("mean_std",), classifiers=("LR",), jobs=1, folds=3),
                        log=lambda m: None)
    assert report["cv"]["grouped"] and report["cv"]["groups"] == 9
    keys = store.load_split(emb, "all").keys
    folds_of = {}
    for key, fold in zip(keys, report["cv"]["fold_of_clip"]):
        folds_of.setdefault(group_of[key], set()).add(fold)
    assert len(folds_of) == 9 and all(len(f) == 1 for f in folds_of.values())
    with pytest.raises(cv.FoldError, match=r"needs at least 10 groups, but the clips come from 9 groups"):
        cc.compare(emb, str(tmp_path / "out2"),
                   cc.CompareSettings(feature_sets=("mean_std",), classifiers=("LR",), jobs=1, folds=10),
                   log=lambda m: None)


def test_multilabel_cv_scores_map_and_auc_per_held_out_fold(tmp_path):
    """A multi-label store (multi-hot labels) is cross-validated with one-vs-rest models and scored by mAP and
    ROC-AUC per held-out fold; the oracle refits sklearn's own OneVsRest pipeline on the same folds and scores
    it with sklearn's metrics over the classes that have a positive and a negative in the fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(CLASSES), 128)) * 0.3
    hot = (rng.random((48, len(CLASSES))) < 0.35).astype(np.uint8)
    hot[hot.sum(1) == 0, 0] = 1  # every clip carries a class
    embs = [(hot[i] @ centres + rng.normal(size=(10, 128))).astype(np.float32) for i in range(len(hot))]
    root = str(tmp_path / "emb")
    store.write_shard(store.shard_path(root, "all", 0), np.arange(len(hot)), hot, embs)
    store.write_info(root, {"label_names": CLASSES, "final_relu": True, "postprocess": False, "dataset": "synthetic",
                            "weights": None, "complete": True, "multilabel": True})
    report = cc.compare(root, str(tmp_path / "cv"),
                        cc.CompareSettings(feature_sets=("mean_std",), classifiers=("LR",), jobs=1, folds=3),
                        log=lambda m: None)
    assert report["multilabel"] and report["metric"] == "mAP"
    cell = next(c for c in report["cells"] if c["classifier"] == "LR")
    x, fold_of = mean_std(embs), np.asarray(report["cv"]["fold_of_clip"])
    assert sorted(np.bincount(fold_of).tolist()) == sorted(report["cv"]["fold_sizes"]) and len(fold_of) == len(hot)
    for j in range(3):
        tr, te = np.where(fold_of != j)[0], np.where(fold_of == j)[0]
        model = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression())).fit(x[tr], hot[tr])
        p, y = model.predict_proba(x[te]), hot[te]
        keep = (y.sum(0) > 0) & (y.sum(0) < len(y))
        assert cell["mAP_folds"][j] == pytest.approx(average_precision_score(y[:, keep], p[:, keep]), abs=1e-6)
        assert cell["roc_auc_folds"][j] == pytest.approx(roc_auc_score(y[:, keep], p[:, keep]), abs=1e-6)
    assert cell["mAP_mean"] == pytest.approx(np.mean(cell["mAP_folds"]))
