"""compare's model selection (vggish_jax.classify.selection) on a small split store with groups, against sklearn
run directly: the chosen cell is the grouped-CV winner among the validation finalists, it is refitted on train +
validation, the test split never influences the choice, and table.md names the protocol and the other one."""
import json

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from vggish_jax.classify import compare as cc, selection
from vggish_jax.pipeline import store

CLASSES = ["a", "b", "c", "d", "e"]
SIZES = {"train": 8, "validation": 2, "test": 6}  # clips per class; 2 clips per group (video)
CLASSIFIERS = ("LR", "kNN", "SVCrbf", "DT", "NB")
SEED = 9  # a store where the validation winner (LR) is not the CV winner (SVCrbf): asserted below


def oracle(name: str, n_train: int):
    """The table's recipe, written with sklearn alone (FMA's settings: compare.make_classifier's docstring)."""
    clf = {"LR": LogisticRegression(), "kNN": KNeighborsClassifier(n_neighbors=min(200, n_train)),
           "SVCrbf": SVC(kernel="rbf", gamma="auto", random_state=0),
           "DT": DecisionTreeClassifier(max_depth=5, random_state=0), "NB": GaussianNB()}[name]
    return make_pipeline(StandardScaler(), clf)


def write_store(root, seed: int, shuffle_test: bool = False) -> dict:
    """Clips of 4 frames around a class centre plus a per-video offset; groups = video ids in info.json.
    Returns {split: (mean_std features, labels, groups)}."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(CLASSES), 16)) * 0.9
    out, groups = {}, {}
    for split, k in SIZES.items():
        clips, labels, vids = [], [], []
        for c in range(len(CLASSES)):
            for v in range(k // 2):
                offset = rng.normal(size=16) * 0.8
                for _ in range(2):
                    clips.append((centres[c] + offset + rng.normal(size=(4, 16))).astype(np.float32))
                    labels.append(c)
                    vids.append(f"{split}-{c}-{v}")
        labels = np.asarray(labels)
        if split == "test" and shuffle_test:
            labels = np.random.default_rng(99).permutation(labels)
        store.write_shard(store.shard_path(str(root), split, 0), list(range(len(clips))), labels, clips)
        groups[split] = vids
        out[split] = (np.stack([np.concatenate([e.mean(0), e.std(0)]) for e in clips]), labels, np.asarray(vids))
    store.write_info(str(root), {"label_names": CLASSES, "final_relu": True, "postprocess": False,
                                 "dataset": "synthetic", "weights": None, "complete": True, "groups": groups})
    return out


def run(tmp_path, name: str, seed: int = SEED, **kw) -> tuple[dict, dict]:
    data = write_store(tmp_path / f"{name}-store", seed, kw.pop("shuffle_test", False))
    settings = cc.CompareSettings(feature_sets=("mean_std",), classifiers=CLASSIFIERS, jobs=1, **kw)
    report = cc.compare(str(tmp_path / f"{name}-store"), str(tmp_path / name), settings, log=lambda m: None)
    return report, data


def test_cv_winner_among_validation_finalists_is_refitted_and_named(tmp_path):
    report, d = run(tmp_path, "auto")
    (xt, yt, gt), (xv, yv, gv), (xs, ys, _) = d["train"], d["validation"], d["test"]
    # Validation ranking, fitted on train only (ties keep table order, as compare does).
    val = {c: float(np.mean(oracle(c, len(yt)).fit(xt, yt).predict(xv) == yv)) for c in CLASSIFIERS}
    top3 = sorted(CLASSIFIERS, key=lambda c: -val[c])[:3]
    # Grouped stratified 5-fold CV over train + validation, each finalist refitted per fold.
    x, y, g = np.concatenate([xt, xv]), np.concatenate([yt, yv]), np.concatenate([gt, gv])
    folds = list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(x, y, g))
    cvm = {c: np.mean([np.mean(oracle(c, len(tr)).fit(x[tr], y[tr]).predict(x[te]) == y[te]) for tr, te in folds])
           for c in top3}
    winner = max(top3, key=lambda c: cvm[c])
    assert winner != top3[0], "the store must separate the two protocols"
    sel = report["selection"]
    assert sel["protocol"] == "cv" and "fewer than 1,000" in sel["why"]
    assert [c["classifier"] for c in sel["cv"]] == top3
    assert [c["cv_mean"] for c in sel["cv"]] == pytest.approx([cvm[c] for c in top3], abs=1e-12)
    assert sel["classifier"] == winner and report["best"]["classifier"] == top3[0]
    # Refitted on train + validation, test scored once with that model.
    refit = report["refit"]
    assert refit["classifier"] == winner and refit["train_clips"] == len(y)
    want = np.mean(oracle(winner, len(y)).fit(x, y).predict(xs) == ys)
    assert refit["test_accuracy"] == pytest.approx(want, abs=1e-12)
    md = open(tmp_path / "auto" / "table.md").read()
    assert f"**Selected: {winner} on mean_std**, by grouped stratified 5-fold CV over train + validation among " \
           f"the 3 best on validation" in md
    assert 'set selection = "validation" in a --config file' in md
    assert json.load(open(tmp_path / "auto" / "table.json"))["selection"]["classifier"] == winner

    # The other protocol, asked for: the validation winner, named as such, with the way back to CV.
    other, _ = run(tmp_path, "val", selection="validation")
    assert other["selection"]["protocol"] == "validation" and other["selection"]["classifier"] == top3[0]
    assert "refit" not in other and 'set selection = "cv" in a --config file' in \
        open(tmp_path / "val" / "table.md").read()


def test_test_labels_never_change_the_choice(tmp_path):
    a, _ = run(tmp_path, "a")
    b, _ = run(tmp_path, "b", shuffle_test=True)
    untimed = [{k: v for k, v in c.items() if k != "seconds"} for c in a["selection"]["cv"]]
    assert untimed == [{k: v for k, v in c.items() if k != "seconds"} for c in b["selection"]["cv"]]
    assert a["selection"]["classifier"] == b["selection"]["classifier"] and a["best"] == {
        **b["best"], **{k: v for k, v in a["best"].items() if k.startswith("test_")}}
    assert a["refit"]["test_accuracy"] != b["refit"]["test_accuracy"]


def test_auto_cross_validates_below_1000_validation_clips_and_multilabel_uses_validation():
    assert selection.protocol("auto", 999, False)[0] == "cv"
    assert selection.protocol("auto", 1000, False)[0] == "validation"
    assert selection.protocol("cv", 5000, False)[0] == "cv"
    assert selection.protocol("cv", 50, True)[0] == "validation"
    with pytest.raises(ValueError, match="selection = 'grid'"):
        cc.CompareSettings(selection="grid")

