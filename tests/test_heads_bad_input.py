"""A damaged head folder given to `predict --head`: one line naming the file and the fix, non-zero exit, no
traceback, never a prediction from a head whose files disagree (issue 28, item 8). Following the fix (restoring
the folder) makes the same command work."""
import json
import os
import pickle
import re
import shutil

import numpy as np
import pytest

from vggish_jax import cli
from vggish_jax.classify import frame_head, heads


def run_cli(capsys, argv):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def good_heads(tmp_path_factory, random_weights_dir):
    """A mean_std head and a frames head (attention pooling) for the random weights, each with its spec."""
    from vggish_jax.pipeline.embed import load_pretrained

    import jax

    d = tmp_path_factory.mktemp("heads")
    spec = load_pretrained(random_weights_dir).spec
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 256)).astype(np.float32), np.arange(12) % 3
    names = ["jazz", "rock", "pop"]
    mlp = heads.save_head(str(d / "mlp"), heads.train_head(x, y, x, y, names, heads.HeadConfig(max_epochs=1),
                                                           weights=random_weights_dir, spec=spec))
    layers = [jax.tree.map(np.asarray, frame_head._init_member(k, (128, 16, 8, 3), "attention"))
              for k in jax.random.split(jax.random.PRNGKey(0), 2)]
    frames = frame_head.save(str(d / "frames"), frame_head.FrameHead(
        names, rng.normal(size=128).astype(np.float32), rng.uniform(0.5, 2, 128).astype(np.float32), layers,
        spec=spec, weights=random_weights_dir, pooling="attention"))
    return {"mean_std": mlp, "frames": frames}


def _json(d, change):
    path = os.path.join(d, "head.json")
    meta = json.load(open(path))
    change(meta)
    json.dump(meta, open(path, "w"))


def _npz(d, change):
    path = os.path.join(d, "head.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(path, **arrays)


def _truncate(d):
    path = os.path.join(d, "head.npz")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _pickle(d):
    with open(os.path.join(d, "head.npz"), "wb") as f:
        pickle.dump({"mean": np.zeros(256)}, f)


def _set(key, value):
    def change(arrays):
        arrays[key] = value(arrays[key])
    return change


# (id, head kind, damage(folder), file named, regex of the reason)
CASES = [
    ("names-2-outputs-3", "mean_std", lambda d: _json(d, lambda m: m.update(label_names=["jazz", "rock"])),
     "head.json", r"names 2 classes \(jazz, rock\) but .*head\.npz's last layer has 3 outputs"),
    ("names-4-outputs-3", "mean_std", lambda d: _json(d, lambda m: m.update(label_names=["a", "b", "c", "d"])),
     "head.json", r"names 4 classes .* last layer has 3 outputs"),
    ("nan-weights", "mean_std", lambda d: _npz(d, _set("layer0_kernel", lambda a: a * np.nan)), "head.npz",
     r"'layer0_kernel' holds NaN or infinite values"),
    ("changed-feature", "mean_std", lambda d: _json(d, lambda m: m.update(feature="mean")), "head.json",
     r"'feature' is 'mean', which this version cannot build; it knows mean_std"),
    ("wrong-kernel-shape", "mean_std", lambda d: _npz(d, _set("layer1_kernel", lambda a: a[:-5])), "head.npz",
     r"'layer1_kernel' has shape \(251, 3\), but the layers chain needs \[256, N\]"),
    ("missing-array", "mean_std", lambda d: _npz(d, lambda a: a.pop("layer0_bias")), "head.npz",
     r"has no array layer0_bias"),
    ("truncated-npz", "mean_std", _truncate, "head.npz", r"unreadable, truncated or damaged"),
    ("pickle-npz", "mean_std", _pickle, "head.npz", r"is a Python pickle, not a NumPy \.npz of arrays"),
    ("broken-json", "mean_std", lambda d: open(os.path.join(d, "head.json"), "w").write("{\"label_names\": ["),
     "head.json", r"not a valid head\.json"),
    ("frames-names-2-outputs-3", "frames", lambda d: _json(d, lambda m: m.update(label_names=["jazz", "rock"])),
     "head.json", r"names 2 classes .* last layer has 3 outputs"),
    ("frames-nan-scorer", "frames", lambda d: _npz(d, _set("m1_layer2_bias", lambda a: a + np.inf)), "head.npz",
     r"'m1_layer2_bias' holds NaN or infinite"),
    ("frames-wrong-classifier", "frames", lambda d: _npz(d, _set("m0_layer3_kernel", lambda a: a[:4])),
     "head.npz", r"'m0_layer3_kernel' has shape \(4, 3\), but the layers chain needs \[8, N\]"),
    ("frames-unknown-pooling", "frames", lambda d: _json(d, lambda m: m.update(pooling="median")), "head.json",
     r"'pooling' is 'median'.*it knows mean, mean_max"),
]


@pytest.mark.parametrize("name,kind,damage,names,reason", CASES, ids=[c[0] for c in CASES])
def test_damaged_head_is_refused_in_one_line_and_restoring_it_works(good_heads, audio_files, capsys, tmp_path,
                                                                     name, kind, damage, names, reason):
    head = str(tmp_path / "head")
    shutil.copytree(good_heads[kind], head)
    damage(head)
    argv = ["predict", audio_files["wav"], "--head", head]
    code, out, err = run_cli(capsys, argv)
    assert code != 0 and out == "", out  # no prediction printed
    assert "Traceback" not in err and "allow_pickle" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vggish-jax predict: error: " + os.path.join(head, names)), lines[0]
    assert re.search(reason, lines[0]), lines[0]
    clf = "JAX-frames" if kind == "frames" else "JAX-MLP"
    assert f"`vggish-jax compare --embeddings EMB --out RUN --features {kind} --classifiers {clf}`" in lines[0]
    # The fix: restore the folder (or retrain: the compare tests check that RUN/head loads).
    shutil.rmtree(head)
    shutil.copytree(good_heads[kind], head)
    code, out, err = run_cli(capsys, argv)
    assert code == 0 and out.startswith(audio_files["wav"] + ": "), err


def test_the_retrain_command_in_the_message_writes_a_head_that_predicts(random_weights_dir, audio_files, capsys,
                                                                       tmp_path):
    """Following the other fix: the compare command the message names (EMB a store of these weights)."""
    from vggish_jax.pipeline import store
    from vggish_jax.pipeline.embed import load_pretrained

    emb, run = str(tmp_path / "emb"), str(tmp_path / "run")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("validation", 6), ("test", 6)):
        y = np.arange(n) % 3
        store.write_shard(store.shard_path(emb, split, 0), np.arange(n), y,
                          [rng.normal(y[i], 0.3, size=(4, 128)).astype(np.float32) for i in range(n)])
    store.write_info(emb, {"label_names": ["jazz", "rock", "pop"], "complete": True, "weights": random_weights_dir,
                           "embedding_spec": load_pretrained(random_weights_dir).spec.to_dict(),
                           "splits": {s: {} for s in ("train", "validation", "test")}})
    argv = ["compare", "--embeddings", emb, "--out", run, "--features", "mean_std", "--classifiers", "JAX-MLP"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    code, out, err = run_cli(capsys, ["predict", audio_files["wav"], "--head", os.path.join(run, "head")])
    assert code == 0 and out.startswith(audio_files["wav"] + ": "), err


def test_a_consistent_head_loads_unchanged(good_heads, capsys):
    """The check passes both kinds as saved, and the loaded head predicts as the saved one does."""
    clip = np.random.default_rng(3).normal(size=(5, 128)).astype(np.float32)
    for kind, d in good_heads.items():
        loaded = heads.load_head(d)
        assert loaded.label_names == ["jazz", "rock", "pop"] and loaded.spec is not None
        p = loaded.predict_proba([clip])
        assert p.shape == (1, 3) and np.isfinite(p).all() and abs(p.sum() - 1) < 1e-5
