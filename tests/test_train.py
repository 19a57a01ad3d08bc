"""Fine-tuning: learning, 1 vs 8 devices, resume (also onto another device count), errors, mini-FMA CLI run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from train_helpers import TINY, flat_params, run_devices, synthetic_sources
from vggish_jax.train import data as data_lib
from vggish_jax.train.config import Config, parse_overrides
from vggish_jax.train.loop import train

HERE = os.path.dirname(os.path.abspath(__file__))


def metric_rows(workdir) -> list[dict]:
    """metrics.jsonl without its wall-clock 'seconds' (the one field no two runs share)."""
    rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("ft_full")
    r = train(TINY, synthetic_sources(), 4, str(d / "work"), log=lambda m: None)
    return d / "work", r


@pytest.mark.slow
def test_learns_and_writes_metrics_and_curve(uninterrupted):
    workdir, result = uninterrupted
    rows = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
    epochs = [r for r in rows if "epoch" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"]
    assert rows[-1]["split"] == "test" and rows[-1]["test_accuracy"] >= 0.5  # chance is 0.25
    assert open(workdir / "learning_curve.png", "rb").read(4) == b"\x89PNG"
    cfg = json.load(open(workdir / "config.json"))
    assert cfg["final_relu"] is True and cfg["batch_size"] == 8 and cfg["input"] == "mel"
    assert cfg["embedding_spec"]["final_relu"] is True and cfg["embedding_spec"]["weights_sha256"] is None


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path):
    one = run_devices(1, tmp_path / "w1", tmp_path / "p1.npz", 1, stop=3)
    eight = run_devices(8, tmp_path / "w8", tmp_path / "p8.npz", 1, stop=3)
    assert one.keys() == eight.keys()
    # Same global batches; only the order of the gradient all-reduce differs, and Adam's normalised update can
    # turn that float noise in a near-zero gradient into a visible change of a rare element (seen with grain's
    # data order: 1 of 196,608 fc1 weights off by 3.0e-5).
    for k in one:
        np.testing.assert_allclose(eight[k], one[k], rtol=1e-4, atol=1e-4, err_msg=k)


@pytest.mark.slow
def test_resume_on_another_device_count_follows_the_same_trajectory(uninterrupted, tmp_path):
    workdir, full = uninterrupted
    run_devices(8, tmp_path / "w", tmp_path / "stopped.npz", TINY.epochs, stop=6)  # mid epoch 2, after a checkpoint
    resumed = train(TINY, synthetic_sources(), 4, str(tmp_path / "w"), log=lambda m: None)
    assert (resumed["resumed_from_step"], resumed["steps_run"]) == (6, 2)
    a, b = flat_params(full["params"]), flat_params(resumed["params"])
    # Six of the eight steps ran on 8 devices: the all-reduce order differs, and Adam's normalised update can
    # turn that float noise in a near-zero gradient into a visible change of a rare element (seen: 1.5e-5).
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-4, err_msg=k)
    full_rows = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
    rows = [json.loads(l) for l in open(tmp_path / "w" / "metrics.jsonl")]
    assert [r.get("epoch") for r in rows] == [r.get("epoch") for r in full_rows]
    for r, f in zip(rows, full_rows):
        for key in ("train_loss", "val_accuracy", "test_accuracy"):
            if key in f:
                assert r[key] == pytest.approx(f[key], rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_killed_run_resumes_exactly(uninterrupted, tmp_path):
    """SIGKILL a real training process right after its first checkpoint, then rerun: same end state."""
    import signal
    import time

    workdir, full = uninterrupted
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    w = tmp_path / "w"
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "train_helpers.py"), str(w), str(tmp_path / "x.npz"),
                             str(TINY.epochs)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = w / "ckpt" / "latest"
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        if latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir()):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    checkpointed = max(int(p.name) for p in latest.iterdir() if p.name.isdigit())
    resumed = train(TINY, synthetic_sources(), 4, str(w), log=lambda m: None)
    assert (resumed["resumed_from_step"], resumed["steps_run"]) == (checkpointed, 8 - checkpointed)
    a, b = flat_params(full["params"]), flat_params(resumed["params"])
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert metric_rows(w) == metric_rows(workdir)


@pytest.mark.slow
def test_resume_with_a_loader_worker_process_follows_the_same_trajectory(uninterrupted, tmp_path):
    """Stopped after a checkpoint with the loader in-process, resumed with a grain worker process (whose
    iterator state has another form, so the loop starts a fresh iterator at the checkpoint's step)."""
    workdir, full = uninterrupted
    train(TINY, synthetic_sources(), 4, str(tmp_path / "w"), log=lambda m: None, stop_after_steps=3)
    resumed = train(TINY.replace(loader_workers=1), synthetic_sources(), 4, str(tmp_path / "w"), log=lambda m: None)
    assert (resumed["resumed_from_step"], resumed["steps_run"]) == (2, 6)  # checkpoint_every=2
    a, b = flat_params(full["params"]), flat_params(resumed["params"])
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.slow
def test_resume_starts_at_the_checkpoint_and_runs_only_the_steps_after_it(uninterrupted, tmp_path):
    """Training is deterministic, so ending where an uninterrupted run ends does not show that the checkpoint
    was used: the resumed run must say where it started and run only the remaining steps."""
    workdir, full = uninterrupted
    stopped = train(TINY, synthetic_sources(), 4, str(tmp_path / "w"), log=lambda m: None, stop_after_steps=3)
    assert (stopped["stopped_at_step"], stopped["resumed_from_step"], stopped["steps_run"]) == (3, None, 3)
    logged = []
    resumed = train(TINY, synthetic_sources(), 4, str(tmp_path / "w"), log=logged.append)
    assert logged[0] == f"resumed from step 2 ({tmp_path / 'w'})"  # the last checkpoint (checkpoint_every=2)
    assert (resumed["resumed_from_step"], resumed["steps_run"], resumed["step"]) == (2, 6, 8)
    assert metric_rows(tmp_path / "w") == metric_rows(workdir)


@pytest.mark.slow
def test_kill_between_an_epochs_checkpoint_and_its_metrics_line_leaves_the_same_log(uninterrupted, tmp_path):
    """A SIGKILL after the epoch-end checkpoint but before its metrics line is written (simulated by
    removing that line): the resumed run starts after the epoch and rebuilds its line from the checkpoint."""
    workdir, _ = uninterrupted
    w = tmp_path / "w"
    train(TINY, synthetic_sources(), 4, str(w), log=lambda m: None, stop_after_steps=4)  # end of epoch 1
    lines = open(w / "metrics.jsonl").readlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1]
    (w / "metrics.jsonl").write_text("")
    resumed = train(TINY, synthetic_sources(), 4, str(w), log=lambda m: None)
    assert (resumed["resumed_from_step"], resumed["steps_run"]) == (4, 4)
    assert metric_rows(w) == metric_rows(workdir)
    assert json.loads(open(w / "metrics.jsonl").readline()) == json.loads(lines[0])  # seconds too: the saved line


@pytest.mark.slow
def test_resume_with_changed_settings_is_refused_unless_allowed(tmp_path):
    w = str(tmp_path / "w")
    train(TINY, synthetic_sources(), 4, w, log=lambda m: None, stop_after_steps=3)
    changed = TINY.replace(learning_rate=0.1, batch_size=4, loader_workers=0, prefetch=2)  # the last two: free
    with pytest.raises(ValueError, match=r"config.json: the checkpoint \(step 2\) was made with other settings "
                                         r"\(batch_size=8 there, 4 now; learning_rate=0.003 there, 0.1 now\); "
                                         r".*--allow-changed-settings") as e:
        train(changed, synthetic_sources(), 4, w, log=lambda m: None)
    assert "\n" not in str(e.value)
    r = train(changed, synthetic_sources(), 4, w, log=lambda m: None, allow_changed_settings=True)
    assert (r["resumed_from_step"], r["steps_run"], r["step"]) == (2, 14, 16)  # 8 steps per epoch at batch 4
    cfg = json.load(open(os.path.join(w, "config.json")))
    assert (cfg["learning_rate"], cfg["batch_size"]) == (0.003, 8)  # the first run's record is kept
    assert cfg["history"] == [{"resumed_at_step": 2, "changed": {"batch_size": [8, 4], "learning_rate": [0.003, 0.1]}}]
    again = train(changed, synthetic_sources(), 4, w, log=lambda m: None)  # the settings in effect: no change
    assert (again["resumed_from_step"], again["steps_run"]) == (16, 0)
    with pytest.raises(ValueError, match=r"learning_rate=0.1 there, 0.003 now"):
        train(TINY.replace(batch_size=4), synthetic_sources(), 4, w, log=lambda m: None)


def test_finetune_flag_allow_changed_settings():
    from vggish_jax import cli

    parser = cli.build_parser(["finetune"])
    base = ["finetune", "--data-dir", "d", "--workdir", "w"]
    assert parser.parse_args(base).allow_changed_settings is False
    assert parser.parse_args(base + ["--allow-changed-settings"]).allow_changed_settings is True


def test_bad_configs_fail_clearly(tmp_path):
    src = synthetic_sources()
    with pytest.raises(ValueError, match="validation split is empty"):
        train(TINY, {**src, "validation": []}, 4, str(tmp_path / "a"))
    with pytest.raises(ValueError, match="needs VGGish weights"):
        train(TINY.replace(init="pretrained"), src, 4, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(TINY.replace(batch_size=64), src, 4, str(tmp_path / "c"))
    with pytest.raises(ValueError, match="bad override"):
        parse_overrides(Config(), ["nonsense=1"])
    assert parse_overrides(Config(), ["epochs=3", "freeze_conv=true", "learning_rate=0.01", "final_relu=false"]) == \
        Config(epochs=3, freeze_conv=True, learning_rate=0.01, final_relu=False)
    assert parse_overrides(Config(final_relu=True), ["final_relu=none"]).final_relu is None
    with pytest.raises(ValueError, match="epochs takes an int, got '1.5'"):
        parse_overrides(Config(), ["epochs=1.5"])
    with pytest.raises(ValueError, match="input must be one of auto, mel, waveform"):
        train(TINY.replace(input="wave"), src, 4, str(tmp_path / "d"))


@pytest.mark.slow
def test_resume_refuses_other_state_shapes(uninterrupted):
    workdir, _ = uninterrupted
    with pytest.raises(ValueError, match=r"config.json: its checkpoint was made with other settings "
                                         r"\(head_hidden=16 there, 8 now\)") as e:
        train(TINY.replace(head_hidden=8), synthetic_sources(), 4, str(workdir))
    assert "\n" not in str(e.value)


def test_batch_must_divide_by_devices(tmp_path):
    code = ("from vggish_jax.train import loop\n"
            "try:\n    loop.check_batch(12)\nexcept ValueError as e:\n    print(e)\n")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout
    assert "batch_size 12 does not divide by the 8 devices" in out


def test_data_order_is_seeded_and_clips_are_fixed_length():
    """Each epoch visits every clip once (the remainder dropped) in a seeded order that changes per epoch; two
    processes' slices of a global batch are its halves; evaluation covers every clip once, padding masked."""
    src = synthetic_sources(n_train=36)["train"]
    for i, x in enumerate(src):
        x["mel"][0, 0, 0] = i  # the clip's id, readable from any batch it lands in
    ids = lambda batch: batch["mel"][:, 0, 0, 0].astype(int).tolist()
    ds = data_lib.train_dataset(src, 8, 3, seed=1, epochs=2)
    assert len(ds) == 8 and ds[0]["mel"].shape == (8, 3, 96, 64)
    epochs = [sum((ids(ds[k]) for k in range(e * 4, e * 4 + 4)), []) for e in (0, 1)]
    assert all(len(set(e)) == 32 and set(e) <= set(range(36)) for e in epochs) and epochs[0] != epochs[1]
    assert ids(data_lib.train_dataset(src, 8, 3, seed=1, epochs=2)[5]) == ids(ds[5])
    assert ids(data_lib.train_dataset(src, 8, 3, seed=2, epochs=2)[5]) != ids(ds[5])
    halves = [data_lib.train_dataset(src, 8, 3, seed=1, epochs=2, process_index=p, process_count=2)[5] for p in (0, 1)]
    assert ids(halves[0]) + ids(halves[1]) == ids(ds[5])
    np.testing.assert_array_equal(np.concatenate([h["label"] for h in halves]), ds[5]["label"])
    one = np.arange(2 * 96 * 64, dtype=np.float32).reshape(2, 96, 64)
    np.testing.assert_array_equal(data_lib.fix_examples(one, 3)[2], one[0])
    ev = list(data_lib.eval_dataset(src[:10], 8, 3))
    assert [b["mask"].sum() for b in ev] == [8, 2] and ids(ev[0]) + ids(ev[1])[:2] == list(range(10))


@pytest.mark.parametrize("workers", [0, pytest.param(1, marks=pytest.mark.slow)])  # a worker starts in ~6 s
def test_resumed_iterator_continues_where_the_saved_state_left_off(workers):
    """The grain iterator state (what the checkpoint stores) restores the exact next batch, across an epoch
    boundary, with batches prefetched in a thread, in this process or a worker; a fresh iterator over ds[5:]
    (the loop's fallback for another pipeline) gives the same batches."""
    src = synthetic_sources()["train"]
    ds = data_lib.train_dataset(src, 8, 2, seed=3, epochs=3)  # 4 steps per epoch, 12 in all

    def rest_after_restore(workers):
        it = data_lib.iterate(ds, workers=workers, prefetch=2)
        for _ in range(5):
            next(it)
        state = it.get_state()
        it.close()
        again = data_lib.iterate(ds, workers=workers, prefetch=2)
        again.set_state(state)
        rest = [b["mel"] for b in again]
        again.close()
        return rest

    want = [ds[k]["mel"] for k in range(5, 12)]
    for got in (rest_after_restore(workers), [b["mel"] for b in data_lib.iterate(ds[5:], workers=workers)]):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_finetune_cli_on_mini_fma(tmp_path, capsys):
    from mini_fma import make_mini_fma
    from vggish_jax import cli

    mini = make_mini_fma(tmp_path / "manual", per_genre_per_split=(1, 1, 1), seconds=1.2, seed=4)
    code = cli.main(["finetune", "--dataset", "fma/small", "--data-dir", str(tmp_path / "data"),
                     "--manual-dir", mini.manual_dir, "--workdir", str(tmp_path / "work"),
                     "--set", "init=random", "width_divisor=16", "examples_per_clip=1", "epochs=1", "head_hidden=8"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(l) for l in open(tmp_path / "work" / "metrics.jsonl")]
    assert rows[0]["epoch"] == 1 and rows[-1]["split"] == "test"
    assert os.path.exists(tmp_path / "work" / "learning_curve.png")
    assert json.load(open(tmp_path / "work" / "config.json"))["label_names"] == list(mini.genres)


def test_heads_paper_shape_and_frame_mean_oracle():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from vggish_jax.train.step import GenreClassifier

    paper = nnx.eval_shape(lambda: GenreClassifier(8, rngs=nnx.Rngs(0)))  # the real VGGish, shapes only
    assert paper.hidden.kernel.get_value().shape == (3968, 256) and paper.out.kernel.get_value().shape == (256, 8)
    model = GenreClassifier(4, examples_per_clip=3, hidden=8, width_divisor=16, head="frame_mean", rngs=nnx.Rngs(1))
    mel = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 96, 64))
    # Oracle: each frame scored alone as a one-frame clip, then the frame logits averaged by hand.
    per_frame = jnp.stack([model(mel[:, i:i + 1]) for i in range(3)], axis=1)
    np.testing.assert_allclose(model(mel), per_frame.mean(axis=1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="head must be"):
        GenreClassifier(4, head="nope", width_divisor=16, rngs=nnx.Rngs(0))


def test_freeze_conv_grad_accum_and_bf16_compute():
    """freeze_conv leaves every conv tensor bit-identical; grad_accum=2 updates only on every 2nd batch;
    bf16 compute keeps float32 params."""
    import jax

    from vggish_jax.train.loop import init_params, resolve
    from vggish_jax.train.step import make_optimizer, make_steps

    cfg = resolve(TINY.replace(examples_per_clip=1, freeze_conv=True, grad_accum=2, dtype="bfloat16"), None, "mel")
    graphdef, params = init_params(cfg, 4, None)
    opt = make_optimizer(cfg, 4, params)
    train_step, _ = make_steps(graphdef, cfg, opt, 4)
    train_step = jax.jit(train_step)
    batch = data_lib.train_dataset(synthetic_sources()["train"], 8, 1, seed=0, epochs=1)[0]
    before = flat_params(params)
    state, m = train_step((params, opt.init(params)), batch, jax.random.PRNGKey(0))
    assert np.isfinite(float(m["loss"]))
    after1 = flat_params(state[0])
    assert all(np.array_equal(after1[k], before[k]) for k in before)  # accumulating, no update yet
    state, _ = train_step(state, batch, jax.random.PRNGKey(1))
    after2 = flat_params(state[0])
    assert all(v.dtype == np.float32 for v in after2.values())
    for k in before:
        changed = not np.array_equal(after2[k], before[k])
        assert changed == ("conv" not in k), k  # convs frozen; fc layers and head trained


def test_examples_per_clip_is_the_frontends_count_for_a_30_s_clip():
    """The paper's 31 x 128 = 3968-d head input: a 30-s clip at 16 kHz holds (480000 - 400) // 160 + 1 = 2998
    frames of 25 ms every 10 ms, so (2998 - 96) // 96 + 1 = 31 whole examples of 96 frames."""
    cfg = Config()
    assert cfg.max_clip_samples == 30 * 16000
    assert cfg.examples_per_clip == ((30 * 16000 - 400) // 160 + 1 - 96) // 96 + 1 == 31
