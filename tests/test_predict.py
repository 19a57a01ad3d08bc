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


def test_predict_with_a_vggish_head(tmp_path, random_weights_dir, audio_files, capsys):
    from vggish_jax.classify import heads

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 256)).astype(np.float32)
    y = np.arange(40) % 8
    head = heads.train_head(x, y, x, y, list(predict.FMA_GENRES), heads.HeadConfig(max_epochs=3),
                            weights=random_weights_dir, final_relu=False)
    heads.save_head(str(tmp_path / "head"), head)
    assert cli.main(["predict", audio_files["flac"], "--head", str(tmp_path / "head"), "--json",
                     "--top", "8"]) == 0
    out = json.loads(capsys.readouterr().out)["predictions"][0]
    assert out["backbone"] == "vggish+head" and out["patches"] == 3
    assert sum(g["score"] for g in out["genres"]) == pytest.approx(1.0, abs=1e-3)
