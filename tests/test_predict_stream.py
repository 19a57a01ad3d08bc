"""MusiCNN prediction streams long files: same patches and tags as the whole file, bounded memory."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from vggish_jax import audio, predict
from vggish_jax.models.musicnn import frontend as mf
from conftest import tone_mix

SPAN = mf.PATCH_FRAMES * mf.HOP  # samples per patch


@pytest.mark.parametrize("length", [SPAN - mf.HOP, SPAN, 3 * SPAN - 1, 3 * SPAN, 3 * SPAN + 255, 16000 * 37 + 123])
@pytest.mark.parametrize("block", [1000, 16000 * 7 + 3, 10 ** 7])
def test_streamed_patches_equal_the_whole_signal(length, block):
    x = (0.3 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    want = mf.patches(mf.log_mel(x))  # the whole-signal frontend, reflect-padded once at both ends
    got = list(mf.stream_patches((x[i: i + block] for i in range(0, length, block)), chunk=2))
    assert all(p.shape[0] <= 2 for p in got)
    got = np.concatenate(got)
    assert got.shape == want.shape and got.shape[0] == mf.num_patches(length)
    np.testing.assert_array_equal(got, want)


def test_predict_streams_a_file_longer_than_a_block_and_matches_the_whole_file(tmp_path):
    path = str(tmp_path / "long.wav")
    sf.write(path, tone_mix(75.0, 22050, seed=3), 22050)  # 75 s: two 60-s decode blocks, 25 patches
    tagger = predict.default_tagger()
    x, _ = audio.load(path, target_sr=mf.SR)
    whole = tagger.run(mf.patches(mf.log_mel(x)))
    got = tagger.predict(path)
    assert got.patches == whole["taggram"].shape[0] == 25
    tags = dict(got.tags)
    np.testing.assert_allclose([tags[t] for t in predict.MSD_TAGS], whole["taggram"].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(tagger.embed(path), whole["penultimate"], atol=1e-5)


def test_silence_check_thresholds(tmp_path):
    loud = str(tmp_path / "loud_late.wav")
    x = np.zeros(16000 * 25, np.float32)
    x[-100] = 0.01  # -40 dBFS, after two silent 10-s blocks: audible
    sf.write(loud, x, 16000, subtype="FLOAT")
    audio.require_audible(loud)
    quiet = str(tmp_path / "quiet.wav")
    sf.write(quiet, 10 ** (-61 / 20) * np.ones(16000, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(audio.SilentAudioError, match="quiet.wav: silent or nearly so .peak -61 dBFS"):
        audio.require_audible(quiet)


MEASURE = textwrap.dedent("""
    import sys
    import numpy as np, soundfile as sf
    from vggish_jax import predict
    from benchmarks.common import peak_rss_mb as peak_mb  # this process's own peak (not the forking worker's)
    path, hours = sys.argv[1], float(sys.argv[2])
    sr, minute = 22050, 22050 * 60
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for m in range(int(hours * 60)):
            t = (np.arange(minute) + m * minute) / sr
            tone = 0.3 * np.sin(2 * np.pi * (220 + 10 * (m % 12)) * t)
            f.write((tone + 0.05 * rng.standard_normal(minute)).astype(np.float32))
    base = peak_mb()
    r = next(predict.iter_predictions([path], predict.default_tagger()))[1]
    print(f"patches={r.patches} peak_rss_mb={peak_mb():.0f} before_predict_mb={base:.0f}")
""")


@pytest.mark.slow  # generates a 3-hour file (~480 MB) and tags it: minutes of CPU
def test_three_hour_file_under_1gb(tmp_path):
    r = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "3h.wav"), "3"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=3600)
    assert r.returncode == 0, r.stderr[-2000:]
    fields = dict(kv.split("=") for kv in r.stdout.split())
    assert int(fields["patches"]) == mf.num_patches(3 * 3600 * 16000)
    assert int(fields["peak_rss_mb"]) < 1024, r.stdout


def test_interrupted_predict_still_reports_what_finished(monkeypatch, capsys):
    import json

    from vggish_jax import cli

    real = predict.iter_predictions

    def interrupted(*a, **k):
        it = real(*a, **k)
        yield next(it)
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "iter_predictions", interrupted)
    assert cli.main(["predict", "--example", predict.EXAMPLE_CLIP, "--json"]) == 130
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert [p["path"] for p in out["predictions"]] == [predict.EXAMPLE_CLIP] and out["complete"] is False
    assert "interrupted; the predictions printed so far are complete, nothing else was saved" in cap.err
