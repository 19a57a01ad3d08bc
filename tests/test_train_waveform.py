"""Fine-tuning from waveforms: the device frontend against the NumPy oracle, augmentation against NumPy
re-computations of the same draws, exact resume with augmentation on, and the CLI on a mini-FMA waveform build."""
import json

import jax
import numpy as np
import pytest

from train_helpers import AUDIO_AUG, TINY, flat_params, run_devices, synthetic_waveform_sources
from vggish_jax.models.vggish import frontend
from vggish_jax.train import augment, data as data_lib
from vggish_jax.train.loop import init_params, resolve, train, waveform_samples
from vggish_jax.train.step import make_optimizer, make_steps

AUG = {k: v for k, v in AUDIO_AUG.items() if k != "spec_augment"}


@pytest.fixture(scope="module")
def sources():
    return synthetic_waveform_sources()


def first_batches(src, cfg):
    """The first training batch of epoch 0 through the waveform path and through the stored-mel path."""
    w = data_lib.train_dataset(src, cfg.batch_size, cfg.examples_per_clip, cfg.seed, 1,
                               waveform_samples=waveform_samples(cfg, training=True))[0]
    m = data_lib.train_dataset(src, cfg.batch_size, cfg.examples_per_clip, cfg.seed, 1)[0]
    return w, m


def test_waveform_log_mels_equal_stored_mels(sources):
    """Augmentation off: the device log-mels are the oracle's stored ones, cyclic padding included."""
    cfg = resolve(TINY, None, "waveform")
    w, m = first_batches(sources["train"], cfg)
    np.testing.assert_array_equal(w["label"], m["label"])
    assert (w["length"] < augment.needed_samples(cfg.examples_per_clip)).any()  # some clips are padded cyclically
    for precision, tol in (("float32", 1e-3), ("float64", 1e-5)):
        c = cfg.replace(frontend_precision=precision)
        mel, _ = jax.jit(lambda b: augment.waveform_features(b, None, c))(w)
        assert np.abs(np.asarray(mel) - m["mel"]).max() <= tol, precision


@pytest.mark.slow
def test_first_step_equal_on_waveform_and_mel_paths(sources):
    """Augmentation off: the first training step gives the same loss and parameters from either input (the
    device frontend in float64, as the NumPy oracle that made the stored mels)."""
    cfg = resolve(TINY.replace(frontend_precision="float64"), None, "waveform")
    w, m = first_batches(sources["train"], cfg)
    graphdef, params = init_params(cfg, 4, None)
    opt = make_optimizer(cfg, 4, params)
    step = jax.jit(make_steps(graphdef, cfg, opt, 4)[0])
    key = jax.random.PRNGKey(3)
    (pw, _), mw = step((params, opt.init(params)), w, key)
    (pm, _), mm = step((params, opt.init(params)), m, key)
    assert float(mw["loss"]) == pytest.approx(float(mm["loss"]), rel=1e-5)
    a, b = flat_params(pw), flat_params(pm)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


def oracle_examples(wave_int16, length, crop, gain, n):
    """[n, example_samples] float64: NumPy framing of the cropped, gained clip into examples, cyclically padded."""
    x = wave_int16[crop:length].astype(np.float64) / 32767.0 * gain
    ex = frontend.frame(x, frontend.DEFAULT.example_samples, frontend.DEFAULT.example_hop_samples)
    return data_lib.fix_examples(ex[:, :, None], n)[:, :, 0].astype(np.float64) if len(ex) else None


def test_augmentation_matches_numpy_recomputation(sources):
    """Crop, gain and mixup drawn on the device: the log-mels equal the NumPy oracle run on the audio those
    draws describe; draws are in range, repeat for the same key and change with the step."""
    cfg = resolve(TINY.replace(frontend_precision="float64", **AUG), None, "waveform")
    n = cfg.examples_per_clip
    w, _ = first_batches(sources["train"], cfg)
    fn = jax.jit(lambda b, k: augment.waveform_features(b, k, cfg))
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 5)
    mel, d = fn(w, key)
    mel, d = np.asarray(mel), {k: np.asarray(v) for k, v in d.items()}
    slack = np.maximum(w["length"] - augment.needed_samples(n), 0)
    assert (d["crop"] >= 0).all() and (d["crop"] <= slack).all() and d["crop"].max() > 0
    db = 20 * np.log10(d["gain"])
    assert (np.abs(db) <= 6.0 + 1e-4).all() and np.ptp(db) > 1.0
    assert sorted(d["partner"]) == list(range(len(d["partner"]))) and ((d["lam"] > 0) & (d["lam"] < 1)).all()
    audio = [oracle_examples(w["waveform"][i], w["length"][i], d["crop"][i], d["gain"][i], n) for i in range(len(slack))]
    for i in range(len(audio)):
        mixed = d["lam"][i] * audio[i] + (1 - d["lam"][i]) * audio[d["partner"][i]]
        want = np.stack([frontend.log_mel(e) for e in mixed])  # each example: 96 frames
        np.testing.assert_allclose(mel[i], want, atol=1e-4, err_msg=f"clip {i}")
    soft = np.asarray(augment.mix_labels(w["label"], 4, d))
    eye = np.eye(4)
    np.testing.assert_allclose(soft, d["lam"][:, None] * eye[w["label"]]
                               + (1 - d["lam"][:, None]) * eye[w["label"][d["partner"]]], atol=1e-6)
    again = {k: np.asarray(v) for k, v in fn(w, key)[1].items()}
    other = {k: np.asarray(v) for k, v in fn(w, jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 6))[1].items()}
    assert all(np.array_equal(again[k], d[k]) for k in d)
    assert not np.array_equal(other["crop"], d["crop"]) and not np.array_equal(other["gain"], d["gain"])


@pytest.mark.slow
def test_four_devices_match_one_device_with_augmentation(tmp_path, monkeypatch):
    """The frontend and every augmentation run sharded: 4 fake devices end where 1 does after 3 steps."""
    monkeypatch.setenv("TRAIN_HELPERS_INPUT", "waveform")
    one = run_devices(1, tmp_path / "w1", tmp_path / "p1.npz", 1, stop=3)
    four = run_devices(4, tmp_path / "w4", tmp_path / "p4.npz", 1, stop=3)
    for k in one:  # same draws and global batch; only the order of the gradient all-reduce differs
        np.testing.assert_allclose(four[k], one[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.slow
def test_resume_with_augmentation_is_exact(sources, tmp_path, monkeypatch):
    """Every augmentation on: a run stopped after a checkpoint and resumed ends where an uninterrupted one does.
    (Also: `train` leaves jax.distributed to the command, even with a coordinator in the environment.)"""
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: pytest.fail("train() initialised jax.distributed"))
    cfg = TINY.replace(epochs=1, spec_augment=True, **AUG)
    quiet = dict(log=lambda m: None)
    full = train(cfg, sources, 4, str(tmp_path / "full"), **quiet)
    stopped = train(cfg, sources, 4, str(tmp_path / "w"), stop_after_steps=3, **quiet)  # checkpoint at step 2
    assert stopped["stopped_at_step"] == 3
    resumed = train(cfg, sources, 4, str(tmp_path / "w"), **quiet)
    a, b = flat_params(full["params"]), flat_params(resumed["params"])
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
    rows = [[json.loads(l) for l in open(tmp_path / d / "metrics.jsonl")] for d in ("full", "w")]
    assert len(rows[0]) == len(rows[1]) == 2  # epoch 1, then test
    for r, f in zip(rows[1], rows[0]):
        drop = lambda row: {k: v for k, v in row.items() if k != "seconds"}
        assert drop(r) == pytest.approx(drop(f))
    assert json.load(open(tmp_path / "w" / "config.json"))["input"] == "waveform"


def test_audio_augmentation_needs_waveforms(tmp_path):
    from train_helpers import synthetic_sources

    with pytest.raises(ValueError, match="work on audio"):
        train(TINY.replace(gain_db=3.0), synthetic_sources(), 4, str(tmp_path / "a"))
    with pytest.raises(ValueError, match="input=waveform but the records hold only"):
        train(TINY.replace(input="waveform"), synthetic_sources(), 4, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="shorter than one VGGish example"):
        data_lib.fix_waveform(np.zeros(1000, np.int16), 20000, "track 7")
    with pytest.raises(ValueError, match="must be int16"):
        data_lib.fix_waveform(np.zeros(20000, np.float32), 20000)


def test_final_relu_comes_from_the_weights_unless_set():
    from vggish_jax.train.config import Config

    tf_meta, torch_meta = {"final_relu": False, "weights_sha256": "f" * 64}, {"final_relu": True}
    assert resolve(Config(), tf_meta, "mel").final_relu is False
    assert resolve(Config(), torch_meta, "mel").final_relu is True
    assert resolve(Config(final_relu=True), tf_meta, "mel").final_relu is True  # explicit override wins
    assert resolve(Config(init="random"), None, "mel").final_relu is True  # no weights: the paper's ReLU


@pytest.mark.slow
def test_finetune_cli_on_mini_fma_waveforms(tmp_path, capsys):
    """`finetune --dataset fma/small_waveform` with every augmentation, from tiny weights that record
    final_relu=false (as TF conversions do): the run uses and records it; resuming with another final_relu
    is refused with one line."""
    from flax import nnx

    from mini_fma import make_mini_fma
    from vggish_jax import cli
    from vggish_jax.models.vggish import params
    from vggish_jax.models.vggish.modeling import VGGish

    mini = make_mini_fma(tmp_path / "manual", per_genre_per_split=(2, 1, 1), seconds=1.2, seed=2,
                         genres=("Electronic", "Rock"), corrupt=False, short=False, known_bad=False)
    backbone = nnx.to_pure_dict(nnx.state(VGGish(width_divisor=16, rngs=nnx.Rngs(5)), nnx.Param))
    weights = params.save(tmp_path / "weights", backbone, metadata={"source": "tensorflow", "final_relu": False})
    sha = params.load(weights)[2]["weights_sha256"]
    workers0 = str(tmp_path / "settings.toml")  # decode in this process
    open(workers0, "w").write("workers = 0\n")
    args = ["finetune", "--dataset", "fma/small_waveform", "--data-dir", str(tmp_path / "data"), "--config", workers0,
            "--manual-dir", mini.manual_dir, "--workdir", str(tmp_path / "work"), "--weights", weights,
            "--set", "width_divisor=16", "examples_per_clip=1", "epochs=1", "head_hidden=8", "batch_size=2",
            "random_crop=true", "max_clip_samples=20000", "gain_db=3", "mixup_alpha=0.2", "spec_augment=true"]
    assert cli.main(args) == 0, capsys.readouterr().err
    rows = [json.loads(l) for l in open(tmp_path / "work" / "metrics.jsonl")]
    assert rows[0]["epoch"] == 1 and rows[-1]["split"] == "test"
    cfg = json.load(open(tmp_path / "work" / "config.json"))
    assert cfg["input"] == "waveform" and cfg["final_relu"] is False and cfg["random_crop"] is True
    assert cfg["embedding_spec"]["weights_sha256"] == sha and cfg["embedding_spec"]["final_relu"] is False
    capsys.readouterr()
    assert cli.main(args + ["final_relu=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "config.json" in err and "final_relu: True" in err and "False" in err

    # The build it trained on is self-consistent: the waveform path's log-mels of its int16 records are
    # their stored mels (float64 frontend: within 1e-5), as with the synthetic sources above.
    from vggish_jax.datasets import fma

    src = fma.data_sources(fma.builder("fma/small_waveform", data_dir=str(tmp_path / "data")))["train"]
    cfg = resolve(TINY.replace(examples_per_clip=1, frontend_precision="float64"), None, "waveform")
    w = data_lib.eval_dataset(src, len(src), 1, waveform_samples=waveform_samples(cfg, training=False))[0]
    m = data_lib.eval_dataset(src, len(src), 1)[0]
    mel, _ = jax.jit(lambda b: augment.waveform_features(b, None, cfg))(w)
    assert len(src) == 4 and np.abs(np.asarray(mel) - m["mel"]).max() <= 1e-5


def test_distributed_init_is_the_commands_job(monkeypatch, tmp_path, capsys):
    """`finetune --distributed` initialises jax.distributed before anything else; the library never does."""
    from vggish_jax import cli

    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append(1))
    # No --weights: the command fails right after initialising, before touching any data.
    assert cli.main(["finetune", "--distributed", "--data-dir", str(tmp_path), "--workdir", str(tmp_path / "w")]) == 2
    assert calls == [1] and "--weights DIR is needed" in capsys.readouterr().err
