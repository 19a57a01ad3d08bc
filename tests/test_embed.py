"""Embedding pipeline and `vggish-jax embed` CLI on generated audio with the small random-weights VGGish
(conftest.small_weights_dir: same layers and shapes, widths / 8)."""
import json
import os

import numpy as np
import pytest

from vggish_jax import audio, cli, skips
from vggish_jax.models.vggish import frontend, params, postprocess as post
from vggish_jax.models.vggish.frontend import file_examples
from vggish_jax.pipeline.embed import load_pretrained
from vggish_jax.models.vggish.params import WeightsError


@pytest.fixture(scope="module")
def embedder(small_weights_dir):
    return load_pretrained(small_weights_dir, batch_size=4)


def test_file_examples_equal_whole_file_frontend(audio_files):
    x, sr = audio.load(audio_files["wav"])
    want = frontend.waveform_to_examples(x, sr)
    got = file_examples(audio_files["wav"], block_seconds=0.5)
    assert got.shape == want.shape == (3, 96, 64)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_embed_file_matches_model_on_examples(embedder, audio_files):
    ex = frontend.waveform_to_examples(*audio.load(audio_files["flac"]))
    want = np.asarray(embedder.model(ex))
    got = embedder.embed_file(audio_files["flac"])
    assert got.shape == (3, 128)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_cross_file_batching_equals_one_file_at_a_time(embedder, audio_files):
    paths = [audio_files[k] for k in ("wav", "mono22k", "corrupt", "mp3", "short", "flac")]
    results, errors = embedder.embed_files(paths, workers=2)
    assert list(results) == [audio_files[k] for k in ("wav", "mono22k", "mp3", "flac")]
    assert set(errors) == {audio_files["corrupt"], audio_files["short"]}
    assert results[audio_files["mono22k"]].shape == (2, 128)
    for p, emb in results.items():
        np.testing.assert_allclose(emb, embedder.embed_file(p), atol=1e-4, rtol=1e-4)


def test_on_error_raise(embedder, audio_files):
    with pytest.raises(audio.AudioError, match="corrupt.mp3"):
        embedder.embed_files([audio_files["corrupt"]], on_error="raise")


def test_too_short_clip_errors_or_pads(embedder, audio_files):
    with pytest.raises(frontend.TooShortError, match="short.wav.*--pad"):
        embedder.embed_file(audio_files["short"])
    assert embedder.embed_file(audio_files["short"], pad=True).shape == (1, 128)


def test_final_relu_flag(small_weights_dir, embedder, audio_files):
    relu = load_pretrained(small_weights_dir, final_relu=True, batch_size=4)
    a = embedder.embed_file(audio_files["wav"])
    b = relu.embed_file(audio_files["wav"])
    np.testing.assert_allclose(b, np.maximum(a, 0), atol=1e-6)


def test_postprocess_needs_pca_and_applies_it(tmp_path, embedder, audio_files):
    from vggish_jax.models.vggish import modeling
    params.save(tmp_path / "nopca", modeling.random(0, width_divisor=8))
    with pytest.raises(WeightsError, match=r"nopca: .*no PCA params, which postprocess needs; .*--pca .*--out .*nopca"):
        load_pretrained(tmp_path / "nopca", batch_size=4).embed_file(audio_files["wav"], postprocess=True)
    pca = post.PCAParams(np.eye(128), np.zeros(128))
    params.save(tmp_path / "w", modeling.random(0, width_divisor=8), pca=pca)
    with_pca = load_pretrained(tmp_path / "w", batch_size=4)
    q = with_pca.embed_file(audio_files["wav"], postprocess=True)
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(q, post.quantize(embedder.embed_file(audio_files["wav"])))


def test_missing_weights_dir_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="no converted weights.*vggish-jax convert"):
        load_pretrained(tmp_path / "nowhere")


def test_cli_embed(small_weights_dir, audio_files, tmp_path, capsys):
    out = tmp_path / "emb" / "embeddings.npz"
    files = [audio_files[k] for k in ("wav", "mp3", "corrupt", "missing", "empty", "nan")]
    code = cli.main(["embed", *files, "--weights", small_weights_dir, "--out", str(out.parent), "--batch-size", "4"])
    assert code == 0
    err = capsys.readouterr().err
    for bad in ("corrupt", "missing", "empty", "nan"):
        assert audio_files[bad] in err
    with np.load(out) as z:
        assert sorted(z.files) == sorted([audio_files["wav"], audio_files["mp3"]])
        assert z[audio_files["wav"]].shape == (3, 128)
    meta = json.loads((tmp_path / "emb" / "embeddings.json").read_text())
    assert meta["final_relu"] is False and meta["postprocess"] is False and len(meta["errors"]) == 4


def test_cli_all_files_bad_fails(small_weights_dir, audio_files, tmp_path, capsys):
    code = cli.main(["embed", audio_files["corrupt"], "--weights", small_weights_dir, "--out", str(tmp_path / "x")])
    assert code == 1 and "1 of 1 files could not be embedded" in capsys.readouterr().err


def test_cli_missing_weights(audio_files, tmp_path, capsys):
    code = cli.main(["embed", audio_files["wav"], "--weights", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    assert code == 2 and "vggish-jax convert" in capsys.readouterr().err


def test_iter_files_streams_in_input_order_with_skip_records(embedder, audio_files):
    paths = [audio_files[k] for k in ("wav", "corrupt", "mono22k", "short", "missing", "empty")]
    out = list(embedder.iter_files(paths, workers=2))
    assert [p for p, _ in out] == paths
    kinds = {1: "undecodable", 3: "too_short", 4: "missing", 5: "undecodable"}
    for k, kind in kinds.items():
        s = out[k][1]
        assert isinstance(s, skips.Skip) and (s.kind, s.path) == (kind, paths[k]), s
        assert paths[k] in s.reason and "\n" not in s.reason
    # the good files' rows are the model applied to the NumPy oracle frontend's examples of each file
    for k in (0, 2):
        want = np.asarray(embedder.model(frontend.waveform_to_examples(*audio.load(paths[k]))))
        np.testing.assert_allclose(out[k][1], want, atol=1e-4, rtol=1e-4)


def _long_file(path, seconds, sr):
    import soundfile as sf
    from conftest import tone_mix

    x = tone_mix(seconds, sr, seed=1) * np.linspace(0.2, 1.0, int(round(seconds * sr)), dtype=np.float32)
    sf.write(path, x, sr)
    return path


def test_long_file_streams_in_blocks_and_equals_the_whole_file(small_weights_dir, tmp_path):
    path = _long_file(str(tmp_path / "long.wav"), 75.3, 44100)
    streamed = load_pretrained(small_weights_dir, batch_size=8)
    streamed.stream_seconds = 10.0  # so this 75-s file takes the block path (60-s blocks)
    whole = load_pretrained(small_weights_dir, batch_size=8)
    (p, got), = streamed.iter_files([path], workers=1)
    want = whole._embed_16k(audio.load(path, 16000)[0])  # decoded whole, one waveform
    assert got.shape == want.shape == (78, 128)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_float64_device_path_equals_numpy_oracle_path(small_weights_dir, audio_files):
    e64 = load_pretrained(small_weights_dir, batch_size=4, precision="float64")
    for key in ("mp3", "mono22k"):
        want = np.asarray(e64.model(file_examples(audio_files[key])))  # NumPy frontend + model, eagerly
        got = e64.embed_file(audio_files[key])
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # a second process on 4 fake devices (its own jax start and compiles)
def test_embed_cli_on_4_fake_devices_equals_1_device(small_weights_dir, audio_files, tmp_path):
    import os
    import subprocess
    import sys

    files = [audio_files[k] for k in ("wav", "mono22k", "flac", "mp3", "short")]
    args = ["embed", *files, "--weights", small_weights_dir, "--batch-size", "8", "--pad"]
    assert cli.main(args + ["--out", str(tmp_path / "one")]) == 0
    code = ("import sys, jax; from vggish_jax import cli; assert jax.device_count() == 4, jax.devices(); "
            "sys.exit(cli.main(sys.argv[1:]))")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu",
               PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code, *args, "--out", str(tmp_path / "four")], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(tmp_path / "one" / "embeddings.npz") as one, np.load(tmp_path / "four" / "embeddings.npz") as four:
        assert sorted(one.files) == sorted(four.files) == sorted(files)
        for f in files:
            assert one[f].shape == four[f].shape
            assert np.abs(one[f] - four[f]).max() <= 1e-5


def test_decoding_in_worker_processes_gives_the_same_embeddings(embedder, audio_files):
    paths = [audio_files[k] for k in ("wav", "corrupt", "mono22k")]
    threads = list(embedder.iter_files(paths, workers=1))
    procs = list(embedder.iter_files(paths, workers=2, processes=True))
    assert [p for p, _ in procs] == paths and procs[1][1] == threads[1][1]  # the same Skip record
    for (_, a), (_, b) in zip(threads[::2], procs[::2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # writes a 2-hour wav (230 MB) and embeds 20 min and 2 h in fresh processes
def test_peak_memory_does_not_grow_with_file_length(small_weights_dir, tmp_path):
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(repo, "experiments", "long_file_memory.py")
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    peaks = {}
    for seconds in (1200, 7200):
        proc = subprocess.run([sys.executable, script, "--seconds", str(seconds), "--weights", small_weights_dir,
                               "--keep", str(tmp_path / f"{seconds}.wav")], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["rows"] == frontend.num_examples(seconds * 16000)
        peaks[seconds] = out["peak_rss_mb"]
    # Held whole, the 100 extra minutes would add at least their float32 waveform: 100 * 60 * 16000 * 4 B = 366 MiB.
    assert peaks[7200] - peaks[1200] < 60, peaks


def test_one_reader_for_embed_outputs_and_extract_stores(embedder, audio_files, small_weights_dir, tmp_path):
    """`pipeline.stored.read` gives the same rows, start times and spec from `embed`'s OUT.npz and from an
    extract store of the same files; the rows are the NumPy-oracle log-mels through the same model."""
    import shutil

    from vggish_jax.pipeline import stored

    folder = tmp_path / "music"
    folder.mkdir()
    for key in ("wav", "mono22k"):
        shutil.copy(audio_files[key], folder / f"{key}.wav")
    files = sorted(str(p) for p in folder.iterdir())
    npz, store_dir = str(tmp_path / "e" / "embeddings.npz"), str(tmp_path / "store")
    assert cli.main(["embed", *files, "--weights", small_weights_dir, "--out", os.path.dirname(npz),
                     "--batch-size", "4"]) == 0
    assert cli.main(["extract", "--dataset", str(folder), "--weights", small_weights_dir, "--out", store_dir,
                     "--workers", "0", "--batch-size", "4"]) == 0
    a, b = stored.read(npz), stored.read(store_dir)
    assert (a.kind, b.kind) == ("embed", "extract") and a.spec == b.spec
    assert list(a.embeddings) == files and list(b.embeddings) == ["all/0", "all/1"]
    for f, (ea, eb) in zip(files, zip(a.embeddings.values(), b.embeddings.values())):
        want = embedder.embed_examples(frontend.waveform_to_examples(*audio.load(f)))
        np.testing.assert_allclose(ea.values, want, rtol=0, atol=2e-3 * np.abs(want).max())
        np.testing.assert_allclose(eb.values, ea.values, rtol=0, atol=1e-5)
        np.testing.assert_allclose(ea.start_s, 0.96 * np.arange(want.shape[0]), atol=1e-6)
        np.testing.assert_allclose(eb.start_s, ea.start_s, atol=1e-6)
    with pytest.raises(stored.StoredError, match=r"x.npz: no x.json next to it.*rerun `vggish-jax embed"):
        stored.read(str(tmp_path / "x.npz"))
    with pytest.raises(stored.StoredError, match=r"neither an `embed` output"):
        stored.read(str(folder))
