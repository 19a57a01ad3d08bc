"""vggish_jax.hear (issue 27 item 2): the HEAR 2021 API and the X-ARES encoder.

The API tests need only torch (in the test extra) and run in the default suite: timestamps are window centres
in ms, every sound of a batch equals `vggish_jax.embed` of that sound alone with the same hop and pad_last,
the scene embedding is the mean over time. The harness tests run the packages themselves: `hear-validator`,
heareval's embedding runner on a tiny scene task and a tiny event task built here, and X-ARES's
`check_audio_encoder`. Those packages pin Python < 3.9 and CUDA torch, so they live in a venv of their own
(.ci/run builds .venv-hear and runs this file there); where they are absent those tests skip, saying so.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import vggish_jax

torch = pytest.importorskip("torch", reason="vggish_jax.hear's modules are torch modules (pip install -e '.[test]')")
from vggish_jax import hear  # noqa: E402

SR = 16000
HARNESS = ("hearvalidator", "heareval", "xares")
HAVE_HARNESS = all(importlib.util.find_spec(m) for m in HARNESS) and shutil.which("hear-validator") is not None
if os.environ.get("VGGISH_JAX_REQUIRE_HEAR") == "1" and not HAVE_HARNESS:  # .ci/run: fail, never skip, there
    raise RuntimeError(f"VGGISH_JAX_REQUIRE_HEAR=1 but {', '.join(HARNESS)} or hear-validator are missing")
needs_harness = pytest.mark.skipif(
    not HAVE_HARNESS,
    reason="the HEAR/X-ARES harness packages (hearvalidator, heareval, xares) are not installed here; .ci/run "
           "installs them in .venv-hear and runs this file there")


def _audio(n: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    freqs = rng.uniform(200, 2000, size=(n, 1))
    return (0.5 * np.sin(2 * np.pi * freqs * t) + 0.1 * rng.standard_normal((n, t.size))).astype(np.float32)


@pytest.fixture(scope="module")
def hear_model(small_weights_dir):
    return hear.load_model(small_weights_dir, hop_s=0.05)


def test_timestamps_are_window_centres_in_ms_and_rows_equal_embed(hear_model, small_weights_dir):
    audio = _audio(3, 2.3)
    emb, ts = hear.get_timestamp_embeddings(torch.from_numpy(audio), hear_model)
    assert isinstance(hear_model, torch.nn.Module) and emb.dtype == torch.float32
    model = vggish_jax.VGGish.from_pretrained(small_weights_dir)
    for k in range(3):
        want = vggish_jax.embed(audio[k], SR, model, hop_s=0.05, pad_last=True)
        np.testing.assert_allclose(emb[k].numpy(), want.values, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ts[k].numpy(), (want.start_s + 0.975 / 2) * 1000, atol=1e-3)
    # Equal spacing; the last window is the partial one at 1.35 s (whole ones end at 1.3 s + 0.975 s).
    assert np.allclose(np.diff(ts.numpy()), 50.0, atol=1e-3) and ts[0, -1].item() == pytest.approx(1837.5)
    assert ts[0, -1].item() <= 2300.0
    scene = hear.get_scene_embeddings(torch.from_numpy(audio), hear_model)
    np.testing.assert_allclose(scene.numpy(), emb.numpy().mean(axis=1), rtol=1e-6, atol=1e-6)


def test_a_sound_shorter_than_one_window_gets_one_timestamp(hear_model, small_weights_dir):
    audio = _audio(2, 0.7, seed=1)
    emb, ts = hear.get_timestamp_embeddings(torch.from_numpy(audio), hear_model)
    assert emb.shape == (2, 1, 128) and ts[0, 0].item() == pytest.approx(487.5)
    model = vggish_jax.VGGish.from_pretrained(small_weights_dir)
    want = vggish_jax.embed(audio[1], SR, model, pad=True)
    np.testing.assert_allclose(emb[1].numpy(), want.values, rtol=1e-5, atol=1e-5)


def test_the_hop_is_settable_and_checked(small_weights_dir):
    m = hear.load_model(small_weights_dir, hop_s=0.96)
    emb, ts = hear.get_timestamp_embeddings(torch.from_numpy(_audio(1, 2.8)), m)
    # A hop over half a window keeps whole windows only (a partial one's centre could pass the end).
    np.testing.assert_allclose(ts[0].numpy(), [487.5, 1447.5], atol=1e-3)
    with pytest.raises(ValueError, match="hop_s must be a positive multiple of the 10 ms frame hop"):
        hear.load_model(small_weights_dir, hop_s=0.025)
    with pytest.raises(ValueError, match="weights folder written by `vggish-jax convert`"):
        hear.load_model()


def test_the_xares_encoder_gives_frames_every_hop(small_weights_dir):
    enc = hear.VGGishEncoder(small_weights_dir, hop_s=0.04)
    assert type(enc).__name__.endswith("Encoder") and isinstance(enc, torch.nn.Module)
    assert (enc.output_dim, enc.sampling_rate, enc.hop_size_in_ms) == (128, 16000, pytest.approx(40.0))
    audio = _audio(2, 3.125, seed=2)
    out = enc(torch.from_numpy(audio))
    model = vggish_jax.VGGish.from_pretrained(small_weights_dir)
    want = vggish_jax.embed(audio[1], SR, model, hop_s=0.04, pad_last=True).values
    assert out.shape == (2, want.shape[0], 128)
    np.testing.assert_allclose(out[1].numpy(), want, rtol=1e-5, atol=1e-5)


# ---- the harness packages themselves ----

@pytest.fixture(scope="module")
def full_weights(tmp_path_factory):
    """Random full-size weights written by the CLI, as a user of the harness would make them."""
    d = tmp_path_factory.mktemp("hear") / "W"
    subprocess.run([sys.executable, "-m", "vggish_jax.cli", "convert", "--random", "0", "--out", str(d)],
                   check=True, capture_output=True, text=True)
    return str(d)


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}


@needs_harness
def test_hear_validator_passes(full_weights):
    run = subprocess.run([shutil.which("hear-validator"), "vggish_jax.hear", "-m", full_weights, "-d", "cpu"],
                         capture_output=True, text=True, env=_env(), timeout=600)
    assert run.returncode == 0 and "Looks good!" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]


def _task(root, name: str, kind: str, labels: dict, seconds: float) -> None:
    """A HEAR task folder as heareval's runner reads it (heareval/embeddings/task_embeddings.py)."""
    task = root / name
    meta = {"task_name": name, "version": "tiny", "embedding_type": kind,
            "prediction_type": "multiclass" if kind == "scene" else "multilabel", "split_mode": "trainvaltest",
            "sample_duration": seconds, "evaluation": ["top1_acc"], "splits": list(labels)}
    for split, files in labels.items():
        audio_dir = task / str(SR) / split
        audio_dir.mkdir(parents=True)
        for i, fname in enumerate(files):
            sf.write(audio_dir / fname, _audio(1, seconds, seed=i + 10 * len(split))[0], SR, subtype="FLOAT")
        (task / f"{split}.json").write_text(json.dumps(files))
    (task / "task_metadata.json").write_text(json.dumps(meta))
    (task / "labelvocabulary.csv").write_text("idx,label\n0,low\n1,high\n")


@needs_harness
def test_hearevals_runner_embeds_a_scene_and_an_event_task(full_weights, tmp_path):
    tasks, out = tmp_path / "tasks", tmp_path / "embeddings"
    _task(tasks, "tiny-scene", "scene", {"train": {"a.wav": ["low"], "b.wav": ["high"]},
                                         "test": {"c.wav": ["low"]}}, 2.0)
    events = [{"label": "low", "start": 100.0, "end": 900.0}, {"label": "high", "start": 1200.0, "end": 1900.0}]
    _task(tasks, "tiny-event", "event", {"train": {"d.wav": events, "e.wav": events[:1]},
                                         "test": {"f.wav": events[1:]}}, 2.5)
    run = subprocess.run([sys.executable, "-m", "heareval.embeddings.runner", "vggish_jax.hear",
                          "--model", full_weights, "--tasks-dir", str(tasks), "--embeddings-dir", str(out),
                          "--model-options", json.dumps({"hop_s": 0.05})],
                         capture_output=True, text=True, env=_env(), timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    done = out / "vggish_jax.hear-hop-s=0-05"  # heareval names the folder after the module and options
    for task, split, rows in [("tiny-scene", "train", 2), ("tiny-scene", "test", 1),
                              ("tiny-event", "train", 2 * 32), ("tiny-event", "test", 32)]:
        assert (done / task / ".done.embeddings").exists()
        dims = json.loads((done / task / f"{split}.embedding-dimensions.json").read_text())
        assert dims == [rows, 128]  # 2.5 s at 50 ms: whole windows at 0 .. 1.5 s and the partial one at 1.55 s
    stamps = json.loads((done / "tiny-event" / "test.filename-timestamps.json").read_text())
    np.testing.assert_allclose([t for _, t in stamps], (0.05 * np.arange(32) + 0.4875) * 1000, atol=1e-3)
    # The runner's stored rows are the rows of the public embed of the same file.
    model = vggish_jax.VGGish.from_pretrained(full_weights)
    wave, _ = sf.read(tasks / "tiny-event" / "16000" / "test" / "f.wav", dtype="float32")
    want = vggish_jax.embed(wave, SR, model, hop_s=0.05, pad_last=True).values
    got = np.load(done / "tiny-event" / "test" / "f.wav.embedding.npy")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@needs_harness
def test_xares_accepts_the_encoder(full_weights):
    from xares.audio_encoder_checker import check_audio_encoder

    assert check_audio_encoder(hear.VGGishEncoder(full_weights, hop_s=0.05)) is True
