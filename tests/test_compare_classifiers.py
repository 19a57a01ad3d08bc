"""The classifier comparison on synthetic embeddings with planted class structure (written via vggish_jax.pipeline.store)."""
import json
import os

import numpy as np
import pytest

from conftest import settings_toml
from vggish_jax.classify import compare as cc
from vggish_jax import cli
from vggish_jax.classify import features, frame_head, heads
from vggish_jax.pipeline import store

GENRES = ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock"]


def write_synthetic(root, per_class=(12, 4, 4), sep=3.0, seed=0, n_examples=(29, 33), complete=True):
    """Clips whose frame embeddings sit around a class centre; some clips have != 31 examples."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(GENRES), 128)) * sep
    tid = 0
    for split, k in zip(cc.SPLITS, per_class):
        ids, labels, embs = [], [], []
        for c in range(len(GENRES)):
            for _ in range(k):
                n = int(rng.integers(n_examples[0], n_examples[1] + 1))
                embs.append((centres[c] + rng.normal(size=(n, 128))).astype(np.float32))
                ids.append(tid)
                labels.append(c)
                tid += 1
        store.write_shard(store.shard_path(str(root), split, 0), ids, labels, embs)
    store.write_info(str(root), {"label_names": GENRES, "final_relu": True, "postprocess": False,
                                 "dataset": "synthetic", "weights": None, "complete": complete})
    return str(root)


@pytest.fixture(scope="module")
def separable(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("emb"))


def test_flatten_rule_and_pooling():
    a = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    flat = features.flatten([a], n=5)
    np.testing.assert_array_equal(flat[0], np.concatenate([a[0], a[1], a[2], a[0], a[1]]))
    assert features.flatten([np.ones((40, 2))], n=31).shape == (1, 62)
    ms = features.mean_std([a])
    np.testing.assert_allclose(ms[0], [2, 3, np.std([0, 2, 4]), np.std([1, 3, 5])])
    with pytest.raises(ValueError):
        features.flatten([np.zeros((0, 2))])


def test_mfcc_is_an_orthonormal_dct_and_stats_shape():
    mel = np.random.default_rng(0).normal(size=(2, 96, 64))
    m = features.mfcc(mel.reshape(-1, 64), n_mfcc=64)
    k, n = np.arange(64)[:, None], np.arange(64)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / 128) * np.sqrt(2 / 64)
    basis[0] /= np.sqrt(2)
    np.testing.assert_allclose(m, mel.reshape(-1, 64) @ basis.T, atol=1e-10)
    s = features.mfcc_stats(mel)
    assert s.shape == (140,)
    np.testing.assert_allclose(s[:20], m[:, :20].mean(0), atol=1e-5)


def test_full_table_has_every_cell_and_separable_is_solved(separable, tmp_path):
    out = str(tmp_path / "run")
    report = cc.compare(separable, out,
                        cc.CompareSettings(feature_sets=cc.FEATURE_SETS, jobs=2,
                                           frame_head=frame_head.FrameHeadConfig(members=2, max_epochs=20, patience=5)),
                        log=lambda m: None)
    # mfcc, musicnn: no --data-dir
    assert report["feature_sets"] == ["embedding", "embedding+pca128", "mean_std", "frames"]
    got = {(c["feature_set"], c["classifier"]) for c in report["cells"]}
    want = {(f, c) for f in report["feature_sets"][:3] for c in cc.PAPER_CLASSIFIERS + ("HGB",)}
    want |= {("mean_std", "JAX-MLP"), ("frames", "JAX-frames")}
    assert got == want
    acc = {(c["feature_set"], c["classifier"]): c["test_accuracy"] for c in report["cells"]}
    failed = {k for k, v in acc.items() if v is None}
    # 12 clips per class but >= 96 dimensions: every class covariance is singular, so only QDA fails.
    assert failed == {(f, "QDA") for f in report["feature_sets"][:3]}
    for f in report["feature_sets"][:3]:
        for clf in ("LR", "linSVC1", "linSVC2"):
            assert acc[(f, clf)] >= 0.95, (f, clf)
    assert acc[("mean_std", "JAX-MLP")] >= 0.95 and acc[("frames", "JAX-frames")] >= 0.95
    assert report["class_counts"]["train"] == [12] * len(GENRES)
    # Accuracy and macro-F1 from their definitions on each cell's saved test confusion matrix (rows: the true
    # class, 4 test clips each): trace / total, and the mean over the classes present of 2PR / (P + R).
    macro_differs = False
    for c in json.load(open(os.path.join(out, "table.json")))["cells"]:
        if c.get("error"):
            continue
        cm = np.asarray(c["test_confusion"], np.float64)
        assert cm.sum(1).tolist() == [4] * len(GENRES), c["classifier"]
        tp, predicted, true = np.diag(cm), cm.sum(0), cm.sum(1)
        p = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        r = tp / true
        f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=p + r > 0)
        assert c["test_accuracy"] == pytest.approx(tp.sum() / cm.sum()), c["classifier"]
        assert c["test_macro_f1"] == pytest.approx(f1[(predicted + true) > 0].mean()), c["classifier"]
        macro_differs |= abs(c["test_macro_f1"] - c["test_accuracy"]) > 1e-3
    assert macro_differs  # some cell where macro-F1 and micro-F1 (= accuracy) differ: the check can tell them apart
    table = open(os.path.join(out, "table.md")).read()
    assert "failed: QDA on embedding: LinAlgError" in table
    for clf in cc.PAPER_CLASSIFIERS:
        assert f"| {clf} |" in table
    saved = json.load(open(os.path.join(out, "table.json")))
    assert saved["split_sizes"] == {"train": 96, "validation": 32, "test": 32} and saved["final_relu"] is True
    assert all(c["wall_seconds"] > 0 for c in saved["cells"])
    for png in ("confusion_best.png", "per_genre_accuracy.png", "class_balance.png"):
        with open(os.path.join(out, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_no_leakage_test_labels_do_not_matter(tmp_path):
    """Scrambling test labels (and test features) must not change the fitted models or validation scores."""
    a = write_synthetic(tmp_path / "a", sep=0.4, seed=3)
    splits = {s: store.load_split(a, s) for s in cc.SPLITS}
    data = cc.build_features(splits)["mean_std"]
    rng = np.random.default_rng(0)
    scrambled = cc.Data(dict(data.x), dict(data.y))
    scrambled.y["test"] = rng.permutation(len(GENRES))[data.y["test"]]
    scrambled.x["test"] = rng.normal(size=data.x["test"].shape)
    for clf in ("LR", "RF", "MLP1"):
        r1, r2 = cc.run_cell("mean_std", clf, data), cc.run_cell("mean_std", clf, scrambled)
        assert r1["validation_accuracy"] == r2["validation_accuracy"]
    m1 = cc.fit_cell("mean_std", "LR", data.x["train"], data.y["train"])
    m2 = cc.fit_cell("mean_std", "LR", scrambled.x["train"], scrambled.y["train"])
    np.testing.assert_array_equal(m1.predict(data.x["validation"]), m2.predict(data.x["validation"]))


def test_head_early_stopping_and_roundtrip(separable, tmp_path):
    splits = {s: store.load_split(separable, s) for s in cc.SPLITS}
    x = {s: features.mean_std(splits[s].embeddings) for s in cc.SPLITS}
    cfg = heads.HeadConfig(max_epochs=40, patience=5)
    head = heads.train_head(x["train"], splits["train"].labels, x["validation"], splits["validation"].labels,
                            GENRES, cfg, final_relu=True, weights="/w")
    hist = head.info["history"]
    best = max(range(len(hist)), key=lambda i: hist[i]["val_score"])
    assert head.info["best_epoch"] == hist[best]["epoch"]
    assert len(hist) <= head.info["best_epoch"] + cfg.patience + 1
    heads.save_head(str(tmp_path / "h"), head)
    loaded = heads.load_head(str(tmp_path / "h"))
    p1, p2 = head.predict_proba(splits["test"].embeddings), loaded.predict_proba(splits["test"].embeddings)
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    np.testing.assert_allclose(p1.sum(-1), 1, atol=1e-5)
    assert loaded.label_names == GENRES and loaded.final_relu is True and loaded.weights == "/w"
    assert (p1.argmax(-1) == splits["test"].labels).mean() >= 0.95


def test_cli_compare_and_errors(separable, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["compare", "--embeddings", separable, "--out", str(out), "--features", "mean_std",
                     "--classifiers", "LR,NB", "--config", settings_toml(tmp_path, "jobs = 1\n")]) == 0
    assert "| LR |" in capsys.readouterr().out
    assert cli.main(["compare", "--embeddings", separable, "--out", str(out), "--classifiers", "XGB"]) == 2
    assert "unknown" in capsys.readouterr().err
    assert cli.main(["compare", "--embeddings", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "vggish-jax extract" in capsys.readouterr().err


def test_end_to_end_on_mini_fma(tmp_path, random_weights_dir, capsys):
    """mini-FMA -> TFDS build -> extract (random VGGish) -> compare with the MFCC baseline, all via the CLI."""
    from mini_fma import make_mini_fma

    mini = make_mini_fma(tmp_path / "manual", per_genre_per_split=(3, 1, 1), seconds=1.2, seed=2)
    data, emb, out = str(tmp_path / "data"), str(tmp_path / "emb"), str(tmp_path / "results")
    assert cli.main(["extract", "--dataset", "fma/small_waveform", "--data-dir", data, "--manual-dir", mini.manual_dir,
                     "--weights", random_weights_dir, "--out", emb, "--batch-size", "8", "--workers", "0"
                     ]) == 0
    settings = settings_toml(tmp_path, f"data_dir = {json.dumps(data)}\njobs = 2\n")
    assert cli.main(["compare", "--embeddings", emb, "--out", out, "--config", settings,
                     "--classifiers", "LR,kNN,NB,HGB,JAX-MLP"]) == 0
    report = json.load(open(os.path.join(out, "table.json")))
    assert report["feature_sets"] == list(cc.FEATURE_SETS)
    assert report["split_sizes"] == {"train": 24, "validation": 8, "test": 8}
    mfcc = {c["classifier"]: c for c in report["cells"] if c["feature_set"] == "mfcc"}
    assert set(mfcc) == {"LR", "kNN", "NB", "HGB"}
    musicnn = {c["classifier"]: c for c in report["cells"] if c["feature_set"] == "musicnn"}
    assert set(musicnn) == {"LR", "kNN", "NB", "HGB"}
    # The mini-FMA's genres differ in spectrum and rhythm, so the MFCC baseline and the pretrained MusiCNN
    # features must both beat chance (1/8) clearly (measured here: 1.0 and 0.875 on the 8 validation clips).
    assert mfcc["LR"]["validation_accuracy"] >= 0.5
    assert musicnn["LR"]["validation_accuracy"] >= 0.5
    assert os.path.exists(os.path.join(out, "head", "head.npz"))
    head = heads.load_head(os.path.join(out, "head"))
    assert head.label_names == list(mini.genres)
    # The head records how its training embeddings were made: these weights (by content hash), raw floats.
    from vggish_jax.pipeline.embed import load_pretrained
    assert head.spec == load_pretrained(random_weights_dir).spec and head.spec.postprocess is None


def test_unfinished_extraction_is_refused_unless_allowed_and_then_flagged(tmp_path, capsys):
    """Issue 13.2: info.json "complete": false -> one-line refusal; allow_incomplete runs and says so."""
    emb = write_synthetic(tmp_path / "emb", per_class=(4, 2, 2), complete=False)
    out = tmp_path / "cmp"
    args = ["compare", "--embeddings", emb, "--out", str(out), "--features", "mean_std", "--classifiers", "LR",
            "--config", settings_toml(tmp_path, "jobs = 1\n")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and os.path.join(emb, "info.json") in err
    assert "set allow_incomplete = true in a --config file" in err
    assert not os.path.exists(out / "table.json")

    # The fix, followed as the message says.
    args[-1] = settings_toml(tmp_path, "jobs = 1\nallow_incomplete = true\n", "allow.toml")
    assert cli.main(args) == 0
    assert "unfinished extraction" in capsys.readouterr().err
    assert json.load(open(out / "table.json"))["extraction_complete"] is False
    assert "INCOMPLETE EXTRACTION" in open(out / "table.md").read()


def write_multilabel(root, seed=0):
    """Clips carrying one or two of 4 classes; each class adds its own direction to the frames."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 128)) * 2.0
    tid = 0
    for split, k in zip(cc.SPLITS, (80, 40, 40)):
        ids, labels, embs = [], [], []
        for _ in range(k):
            hot = np.zeros(4, np.uint8)
            hot[rng.choice(4, size=int(rng.integers(1, 3)), replace=False)] = 1
            embs.append((hot @ centres + rng.normal(size=(10, 128))).astype(np.float32))
            ids.append(tid)
            labels.append(hot)
            tid += 1
        store.write_shard(store.shard_path(str(root), split, 0), ids, labels, embs)
    store.write_info(str(root), {"label_names": list("ABCD"), "final_relu": False, "postprocess": False,
                                 "dataset": "synthetic-multilabel", "weights": None, "complete": True})
    return str(root)


def test_multilabel_table_reports_map_and_auc(tmp_path):
    from sklearn.metrics import average_precision_score

    emb = write_multilabel(tmp_path / "ml")
    out = str(tmp_path / "out")
    report = cc.compare(emb, out,
                        cc.CompareSettings(feature_sets=("mean_std", "frames"),
                                           classifiers=("LR", "NB", "JAX-frames"), jobs=1,
                                           frame_head=frame_head.FrameHeadConfig(members=2, max_epochs=30, patience=5)),
                        log=lambda m: None)
    assert report["multilabel"] and report["metric"] == "mAP"
    cells = {c["classifier"]: c for c in report["cells"]}
    assert set(cells) == {"LR", "NB", "JAX-frames"}
    for c in cells.values():  # separable classes: near-perfect ranking
        assert c["test_mAP"] >= 0.9 and c["test_roc_auc"] >= 0.9 and "test_accuracy" not in c
    # The frame head's test mAP recomputed from its saved weights and sklearn's AP, class by class.
    head = heads.load_head(os.path.join(out, "head_frames"))
    test = store.load_split(emb, "test")
    probs = head.predict_proba(test.embeddings)
    ap = np.mean([average_precision_score(test.labels[:, k], probs[:, k]) for k in range(4)])
    assert abs(ap - cells["JAX-frames"]["test_mAP"]) < 1e-6
    assert os.path.exists(os.path.join(out, "per_class_ap.png")) and os.path.exists(os.path.join(out, "class_balance.png"))
    assert "mAP" in open(os.path.join(out, "table.md")).read()
