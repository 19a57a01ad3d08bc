"""The shipped AudioSet genre head, `predict --weights` with it, and `predict --head H --embeddings STORE`."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from audioset_fixture import manual_dir
from vggish_jax import cli, predict, spec as spec_lib
from vggish_jax.classify import frame_head, heads
from vggish_jax.datasets import audioset
from vggish_jax.pipeline import store

SHIPPED = predict.AUDIOSET_HEAD


def numpy_forward(directory: str, frames: np.ndarray) -> np.ndarray:
    """The head's documented forward written out from its files: standardise, per-frame ReLU MLP, mean over
    frames, linear, softmax; the ensemble's members averaged."""
    meta = json.load(open(os.path.join(directory, "head.json")))
    z = np.load(os.path.join(directory, "head.npz"))
    x = (frames.astype(np.float64) - z["mean"]) / z["scale"]
    probs = []
    for m in range(meta["num_members"]):
        h = x
        for i in range(meta["num_layers"] - 1):
            h = np.maximum(0, h @ z[f"m{m}_layer{i}_kernel"] + z[f"m{m}_layer{i}_bias"])
        logits = h.mean(0) @ z[f"m{m}_layer{meta['num_layers'] - 1}_kernel"] + z[f"m{m}_layer{meta['num_layers'] - 1}_bias"]
        e = np.exp(logits - logits.max())
        probs.append(e / e.sum())
    return np.mean(probs, 0)


def write_release_store(root, release, task="music_genre"):
    from vggish_jax.pipeline.sources.audioset import AudioSetSource

    src = AudioSetSource(release, task)
    for split, n in src.splits().items():
        clips = list(src.clips(split, range(n)))
        store.write_shard(store.shard_path(str(root), split, 0), [c.index for c in clips], [c.label for c in clips],
                          [c.data for c in clips])
    store.write_info(str(root), {"label_names": src.label_names, "embedding_spec": src.spec.to_dict(),
                                 "dataset": "audioset_v1/" + task, "complete": True})
    return str(root)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return manual_dir(tmp_path_factory.mktemp("as"))


@pytest.fixture(scope="module")
def release_store(tmp_path_factory, release):
    return write_release_store(tmp_path_factory.mktemp("store"), release)


def test_shipped_head_loads_and_equals_a_numpy_forward_on_release_embeddings(release, release_store):
    head = heads.load_head(SHIPPED)
    assert isinstance(head, frame_head.FrameHead) and head.spec == audioset.RELEASE_SPEC
    g = audioset.genre_map(os.path.join(release, "ontology.json"), os.path.join(release, "class_labels_indices.csv"))
    assert head.label_names == list(g.names)
    prov = json.load(open(os.path.join(SHIPPED, "provenance.json")))
    assert 0 < prov["test"]["accuracy"] <= 1 and prov["task"] == "genre25"
    assert sum(os.path.getsize(os.path.join(SHIPPED, f)) for f in os.listdir(SHIPPED)) < 4e6
    test = store.load_split(release_store, "test")
    got = head.predict_proba(test.embeddings)
    want = np.stack([numpy_forward(SHIPPED, e) for e in test.embeddings])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_evaluate_head_on_a_store_and_refuse_mixing(tmp_path, release_store, capsys):
    assert cli.main(["predict", "--head", SHIPPED, "--embeddings", release_store, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    test = store.load_split(release_store, "test")
    pred = np.array([numpy_forward(SHIPPED, e).argmax() for e in test.embeddings])
    assert r["clips"] == len(test) and r["accuracy"] == pytest.approx(np.mean(pred == test.labels))
    # A store of embeddings made by converted weights (PCA + uint8 too) is not mixed with the release's.
    other = tmp_path / "ours"
    store.write_shard(store.shard_path(str(other), "test", 0), test.track_ids, test.labels, test.embeddings)
    ours = spec_lib.EmbeddingSpec.create(weights_sha256="cd" * 32, final_relu=False, postprocess=True, dtype="uint8")
    store.write_info(str(other), {"label_names": heads.load_head(SHIPPED).label_names,
                                  "embedding_spec": ours.to_dict(), "complete": True})
    assert cli.main(["predict", "--head", SHIPPED, "--embeddings", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model" in err and "vggish-audioset-v1-release" in err


def test_predict_weights_runs_vggish_pca_uint8_and_the_shipped_head(pca_weights_dir, random_weights_dir,
                                                                    audio_files, capsys):
    from vggish_jax.models.vggish import params as checkpoint, postprocess as post
    from vggish_jax.models.vggish.frontend import file_examples
    from vggish_jax.pipeline.embed import load_pretrained

    assert cli.main(["predict", audio_files["flac"], "--weights", pca_weights_dir, "--json", "--top", "25"]) == 0
    doc = json.loads(capsys.readouterr().out)["predictions"][0]
    got = {g["genre"]: g["score"] for g in doc["genres"]}
    assert "tensorflow/models#9772" in doc["note"] and doc["backbone"] == "vggish+head"
    # Oracle: the model eagerly on NumPy-frontend examples, the PCA + uint8 formula, the NumPy head forward.
    _, pca, _ = checkpoint.load(pca_weights_dir)
    raw = np.asarray(load_pretrained(pca_weights_dir).model(file_examples(audio_files["flac"])))
    want = numpy_forward(SHIPPED, post.quantize(post.pca(raw, pca)))
    names = heads.load_head(SHIPPED).label_names
    assert set(got) == set(names)
    np.testing.assert_allclose([got[g] for g in names], want, atol=2e-3)
    # Weights without PCA params cannot make release-like embeddings: one line saying so.
    assert cli.main(["predict", audio_files["flac"], "--weights", random_weights_dir]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no PCA params, which the AudioSet genre head" in err
    assert random_weights_dir in err and f"--pca vggish_pca_params-970ea276.pth --out {random_weights_dir}" in err
