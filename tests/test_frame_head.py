"""The frame-level head: pooling variants (NumPy inference == the batched JAX path == the formulas written out),
soft-target training, and refitting the model chosen on validation on train + validation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vggish_jax.classify import compare as cc, frame_head, heads
from vggish_jax.pipeline import store


def random_head(pooling: str, seed: int = 0, classes: int = 3, members: int = 2) -> frame_head.FrameHead:
    import jax

    rng = np.random.default_rng(seed)
    keys = jax.random.split(jax.random.PRNGKey(seed), members)
    layers = [jax.tree.map(np.asarray, frame_head._init_member(k, (128, 16, 8, classes), pooling)) for k in keys]
    return frame_head.FrameHead(list("abc")[:classes], rng.normal(size=128).astype(np.float32),
                                rng.uniform(0.5, 2, size=128).astype(np.float32), layers, pooling=pooling)


def written_out(head: frame_head.FrameHead, frames: np.ndarray) -> np.ndarray:
    """Each pooling's textbook formula on one clip, in float64, member by member."""
    x = (frames.astype(np.float64) - head.mean) / head.scale
    probs = []
    for layers in head.members:
        extra = 1 if head.pooling == "attention" else 0
        h = x
        for layer in layers[:len(layers) - 1 - extra]:
            h = np.maximum(0, h @ layer["kernel"] + layer["bias"])
        if head.pooling == "mean":
            v = h.mean(0)
        elif head.pooling == "mean_max":
            v = np.concatenate([h.mean(0), h.max(0)])
        elif head.pooling == "mean_std":
            v = np.concatenate([h.mean(0), np.sqrt(h.var(0) + 1e-6)])
        else:
            s = (h @ layers[-2]["kernel"])[:, 0] + layers[-2]["bias"][0]
            w = np.exp(s - s.max())
            v = (w / w.sum()) @ h
        z = v @ layers[-1]["kernel"] + layers[-1]["bias"]
        e = np.exp(z - z.max())
        probs.append(e / e.sum())
    return np.mean(probs, 0)


@pytest.mark.parametrize("pooling", frame_head.POOLINGS)
def test_pooling_numpy_equals_batched_jax_and_the_formula(pooling, tmp_path):
    head = random_head(pooling)
    rng = np.random.default_rng(1)
    clips = [rng.integers(0, 256, size=(n, 128)).astype(np.uint8) for n in (1, 4, 10, 7)]  # padding in the batch
    got = head.predict_proba(clips)
    np.testing.assert_allclose(got, frame_head.forward_jax(head, clips), atol=2e-5)
    np.testing.assert_allclose(got, np.stack([written_out(head, c) for c in clips]), atol=2e-5)
    frame_head.save(str(tmp_path), head)
    loaded = heads.load_head(str(tmp_path))
    assert loaded.pooling == pooling
    np.testing.assert_allclose(loaded.predict_proba(clips), got, atol=1e-6)


def test_a_head_saved_before_pooling_was_configurable_mean_pools(tmp_path):
    head = random_head("mean")
    frame_head.save(str(tmp_path), head)
    meta = json.load(open(tmp_path / "head.json"))
    del meta["pooling"]
    json.dump(meta, open(tmp_path / "head.json", "w"))
    clip = np.random.default_rng(2).normal(size=(5, 128))
    loaded = heads.load_head(str(tmp_path))
    np.testing.assert_allclose(loaded.predict_proba([clip])[0], written_out(head, clip), atol=2e-5)


def test_unknown_pooling_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="mean_max"):
        frame_head.FrameHeadConfig(pooling="median")


def planted(n_per_class: int, classes: int = 4, seed: int = 0, sep: float = 2.0):
    """Clips of 3..6 frames around a class centre; returns (clips, class indices)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, 128)) * sep
    y = np.repeat(np.arange(classes), n_per_class)
    return [centres[c] + rng.normal(size=(int(rng.integers(3, 7)), 128)) for c in y], y


def test_soft_targets_are_learnt_as_distributions():
    """Every training clip's target puts 0.4 on its true class and 0.6 on one other, random class: the hard argmax
    of these targets is always wrong, the expected target is right. Trained on them, the head finds the class."""
    k = 4
    clips, y = planted(30, k)
    rng = np.random.default_rng(3)
    other = (y + rng.integers(1, k, size=len(y))) % k
    soft = np.zeros((len(y), k), np.float32)
    soft[np.arange(len(y)), y] = 0.4
    soft[np.arange(len(y)), other] = 0.6
    assert not np.any(soft.argmax(1) == y)
    val, y_val = planted(5, k, seed=1)
    test, y_test = planted(10, k, seed=2)
    cfg = frame_head.FrameHeadConfig(hidden=(32,), members=1, max_epochs=25, patience=25, mixup=0, dropout=0.1,
                                     batch_size=16)
    head = frame_head.train_frame_head(clips, soft, val, y_val, list("abcd"), cfg)
    assert np.mean(head.predict_proba(test).argmax(-1) == y_test) >= 0.75  # chance 0.25; hard labels: 0


def write_store(root, parts: dict) -> str:
    """parts: split -> (clips, labels)."""
    tid = 0
    for split, (clips, y) in parts.items():
        store.write_shard(store.shard_path(str(root), split, 0), list(range(tid, tid + len(y))), list(y), clips)
        tid += len(y)
    store.write_info(str(root), {"label_names": list("abcd"), "final_relu": False, "postprocess": True,
                                 "dataset": "planted", "weights": None, "complete": True})
    return str(root)


def missing_class_problem():
    """Class 'd' has no training clip, only validation ones (and a quarter of test)."""
    return planted(12, 3), planted(6, 4, seed=1), planted(8, 4, seed=2)


def test_compare_refit_fits_the_chosen_model_on_train_and_validation(tmp_path):
    """The model fitted on train never predicts 'd'; the refitted one (train + validation) does."""
    (train, y_train), (val, y_val), (test, y_test) = missing_class_problem()
    root = write_store(tmp_path / "s", {"train": (train, y_train), "validation": (val, y_val), "test": (test, y_test)})
    r = cc.compare(root, str(tmp_path / "out"),
                   cc.CompareSettings(feature_sets=("mean_std",), classifiers=("LR", "NB"), jobs=1, refit=True),
                   log=lambda m: None)
    best = next(c for c in r["cells"] if c["classifier"] == r["best"]["classifier"])
    assert r["refit"]["classifier"] == best["classifier"] and r["refit"]["train_clips"] == len(train) + len(val)
    assert best["test_accuracy"] <= 0.75 and r["refit"]["test_accuracy"] >= 0.9
    assert "Refitted on train + validation" in open(tmp_path / "out" / "table.md").read()


def test_jax_heads_refit_for_the_epochs_validation_chose():
    (train, y_train), (val, y_val), (test, y_test) = missing_class_problem()
    cfg = frame_head.FrameHeadConfig(hidden=(32,), members=2, max_epochs=12, patience=4, batch_size=16)
    head = frame_head.train_frame_head(train, y_train, val, y_val, list("abcd"), cfg)
    new = frame_head.refit(head, train + val, np.concatenate([y_train, y_val]))
    assert [len(m["history"]) for m in new.info["members"]] == [m["best_epoch"] + 1 for m in head.info["members"]]
    assert new.info["train_clips"] == len(train) + len(val) and new.pooling == head.pooling
    assert np.mean(head.predict_proba(test).argmax(-1) == y_test) <= 0.75
    assert np.mean(new.predict_proba(test).argmax(-1) == y_test) >= 0.9

    from vggish_jax.classify import features
    x = {k: features.mean_std(c) for k, c in (("train", train), ("val", val), ("test", test))}
    mlp = heads.train_head(x["train"], y_train, x["val"], y_val, list("abcd"),
                           heads.HeadConfig(max_epochs=30, patience=5))
    new = heads.refit(mlp, np.concatenate([x["train"], x["val"]]), np.concatenate([y_train, y_val]))
    assert len(new.info["history"]) == mlp.info["best_epoch"] + 1
    assert np.mean(new.predict_proba_features(x["test"]).argmax(-1) == y_test) >= 0.9


def test_early_stopping_scores_validation_with_the_tables_metric():
    """A multi-label head's early-stopping score is the table's mAP on the same validation probabilities: over
    the classes with a positive and a negative (here 'a' and 'd'; 'b' has no positive, 'c' no negative)."""
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 128))

    def clips(hot):
        return [h @ centres + rng.normal(size=(5, 128)) for h in hot]

    y_train = (rng.random((40, 4)) < 0.4).astype(np.uint8)
    y_val = (rng.random((12, 4)) < 0.4).astype(np.uint8)
    y_val[:, 1], y_val[:, 2] = 0, 1
    y_val[:6, 0], y_val[6:, 0], y_val[::2, 3], y_val[1::2, 3] = 1, 0, 1, 0
    val = clips(y_val)
    cfg = frame_head.FrameHeadConfig(hidden=(16,), members=1, max_epochs=6, patience=6, batch_size=16)
    head = frame_head.train_frame_head(clips(y_train), y_train, val, y_val, list("abcd"), cfg, multilabel=True)
    probs = frame_head.forward_jax(head, val)
    want = average_precision_score(y_val[:, [0, 3]], probs[:, [0, 3]], average="macro")
    assert head.info["members"][0]["best_val_score"] == pytest.approx(want, abs=1e-6)
    assert head.info["ensemble_val_score"] == pytest.approx(want, abs=1e-6)
    table = cc.scores({"test": probs}, cc.Data({}, {"test": y_val}))
    assert table["test_mAP"] == pytest.approx(want, abs=1e-6)
    any_positive = average_precision_score(y_val[:, [0, 2, 3]], probs[:, [0, 2, 3]], average="macro")
    assert abs(any_positive - want) > 1e-3  # the old early-stopping rule would have stopped on another number
