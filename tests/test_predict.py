"""`vggish-jax predict`: the bundled example, generated files, bad files, JSON, and the VGGish-head path."""
import json

import numpy as np
import pytest
import soundfile as sf

from vggish_jax import cli, predict


def test_genre_mapping_covers_real_tags_and_normalises():
    tags = {t for ts in predict.MSD_TO_FMA.values() for t in ts}
    assert tags <= set(predict.MSD_TAGS) and len(predict.MSD_TAGS) == 50
    assert set(predict.MSD_TO_FMA) == set(predict.FMA_GENRES)
    probs = np.zeros(50)
    probs[predict.MSD_TAGS.index("Hip-Hop")] = 0.9
    probs[predict.MSD_TAGS.index("punk")] = 0.3
    probs[predict.MSD_TAGS.index("rock")] = 0.1
    s = predict.genre_scores(probs)
    assert s["Hip-Hop"] == pytest.approx(0.75) and s["Rock"] == pytest.approx(0.25)  # max over Rock's tags
    assert s["International"] == 0.0 and sum(s.values()) == pytest.approx(1.0)


def test_predict_example_and_files_json(tmp_path, audio_files, capsys):
    long_mp3 = tmp_path / "song.mp3"
    t = np.arange(44100 * 7) / 44100
    sf.write(long_mp3, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 44100)
    code = cli.main(["predict", str(long_mp3), audio_files["corrupt"], audio_files["short"], audio_files["wav"],
                     "--example", "--json", "--top", "8"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    paths = [p["path"] for p in out["predictions"]]
    assert paths == [str(long_mp3), audio_files["wav"], predict.EXAMPLE_CLIP]
    assert set(out["errors"]) == {audio_files["corrupt"], audio_files["short"]}
    assert "shorter than one MusiCNN patch" in out["errors"][audio_files["short"]]
    for p in out["predictions"]:
        scores = [g["score"] for g in p["genres"]]
        assert len(scores) == 8 and sum(scores) == pytest.approx(1.0, abs=1e-3)
        assert scores == sorted(scores, reverse=True) and p["backbone"] == "musicnn"
        assert len(p["tags"]) == 8 and all(0 <= t["probability"] <= 1 for t in p["tags"])
    assert [p["patches"] for p in out["predictions"]] == [2, 1, 2]  # 7 s, 3.2 s, 8 s; 2.98 s per patch


def test_predict_text_output_and_all_bad(audio_files, capsys):
    assert cli.main(["predict", "--example"]) == 0
    text = capsys.readouterr().out
    assert predict.EXAMPLE_CLIP in text and "MSD tags:" in text
    assert cli.main(["predict", audio_files["missing"]]) == 1
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["predict"]) == 2


def test_tagger_batches_match_the_original_graph():
    """The tagger's fixed-shape batching (batch 16, one real patch padded) against the original musicnn graph."""
    import os
    with np.load(os.path.join(os.path.dirname(__file__), "data", "musicnn_golden.npz")) as z:
        golden = {k: z[k] for k in z.files}
    tagger = predict.default_tagger()
    for rows in (slice(0, 1), slice(0, 2)):
        out = tagger.run(golden["input"][rows])
        np.testing.assert_allclose(out["taggram"], golden["taggram"][rows], atol=1e-5)
        np.testing.assert_allclose(out["penultimate"], golden["penultimate"][rows], atol=1e-4)
    # predict's tagger and classify's MusiCNN features share one load of the weights (and one jitted forward)
    from vggish_jax.models.musicnn.tagger import Tagger
    assert Tagger()._state is tagger._state and Tagger()._forward is tagger._forward


def _head_dir(tmp_path, weights_dir, spec, name="head"):
    """A head trained on synthetic features shaped like mean+std of uint8 embeddings (not about accuracy)."""
    from vggish_jax.classify import heads

    rng = np.random.default_rng(0)
    x = rng.normal(128.0, 40.0, size=(64, 256)).astype(np.float32)
    y = x[:, :8].argmax(1)  # labels that depend on the input, so the head's output does too
    head = heads.train_head(x, y, x, y, list(predict.FMA_GENRES), heads.HeadConfig(max_epochs=20),
                            weights=weights_dir, final_relu=spec.final_relu, spec=spec)
    return heads.save_head(str(tmp_path / name), head), head


def test_head_on_uint8_pca_features_gets_uint8_pca_features(tmp_path, pca_weights_dir, audio_files, capsys):
    from vggish_jax.models.vggish import params as checkpoint, postprocess as post
    from vggish_jax.models.vggish.frontend import file_examples
    from vggish_jax.pipeline.embed import load_pretrained

    emb = load_pretrained(pca_weights_dir)
    head_dir, head = _head_dir(tmp_path, pca_weights_dir, emb.spec.replace(postprocess=True))
    assert json.loads((tmp_path / "head" / "head.json").read_text())["embedding_spec"]["postprocess"] == \
        "pca_uint8_truncate"
    assert cli.main(["predict", audio_files["flac"], "--head", head_dir, "--json", "--top", "8"]) == 0
    got = {g["genre"]: g["score"] for g in json.loads(capsys.readouterr().out)["predictions"][0]["genres"]}
    # Oracle: NumPy frontend, the model eagerly, the PCA + uint8 formula, then the head.
    _, pca, _ = checkpoint.load(pca_weights_dir)
    raw = np.asarray(emb.model(file_examples(audio_files["flac"])))
    want = head.predict_proba([post.quantize(post.pca(raw, pca))])[0]
    np.testing.assert_allclose([got[g] for g in head.label_names], want, atol=2e-3)
    # The defect this fixes: the same head fed raw floats says something else.
    assert np.abs(head.predict_proba([raw])[0] - want).max() > 0.05


def test_head_refuses_weights_made_differently(tmp_path, random_weights_dir, pca_weights_dir, audio_files, capsys):
    from vggish_jax.pipeline.embed import load_pretrained

    # A head trained on embeddings of other weights (another content hash) than the ones given.
    other = load_pretrained(random_weights_dir).spec.replace(weights_sha256="ab" * 32)
    head_dir, _ = _head_dir(tmp_path, random_weights_dir, other)
    assert cli.main(["predict", audio_files["flac"], "--head", head_dir, "--weights", random_weights_dir]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "weights_sha256" in err and "abababababab" in err and "head.json" in err and random_weights_dir in err
    # A uint8 head given the same parameters without PCA params: one line saying so.
    head_dir, _ = _head_dir(tmp_path, pca_weights_dir, load_pretrained(pca_weights_dir).spec.replace(postprocess=True),
                            name="uint8")
    assert cli.main(["predict", audio_files["flac"], "--head", head_dir, "--weights", random_weights_dir]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no PCA params, which the head" in err and random_weights_dir in err
    assert "head.json (trained on PCA + uint8 embeddings)" in err and "vggish-jax convert --torch-weights" in err


def test_head_without_a_spec_is_refused(tmp_path, random_weights_dir, audio_files, capsys):
    from vggish_jax.pipeline import store

    head_dir, head = _head_dir(tmp_path, random_weights_dir, store.spec_of({}, "x"))
    meta = json.loads((tmp_path / "head" / "head.json").read_text())
    del meta["embedding_spec"]
    (tmp_path / "head" / "head.json").write_text(json.dumps(meta))
    assert cli.main(["predict", audio_files["flac"], "--head", head_dir]) == 2
    assert "records no embedding spec" in capsys.readouterr().err


def test_embedding_spec_of_an_extraction(random_weights_dir):
    from vggish_jax import spec as spec_lib
    from vggish_jax.pipeline import store
    from vggish_jax.pipeline.embed import load_pretrained

    want = load_pretrained(random_weights_dir, final_relu=True).spec.replace(postprocess=True)
    old = {"final_relu": True, "postprocess": True, "weights": random_weights_dir}  # before specs were recorded
    assert store.spec_of(old, "info.json") == want
    assert store.spec_of({spec_lib.KEY: want.to_dict()}, "info.json") == want
    assert store.spec_of({"weights": "/nowhere"}, "info.json").weights_sha256 is None
