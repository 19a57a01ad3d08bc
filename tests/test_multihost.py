"""Multi-host runs that start as README says: the --config settings and JAX_* variables (vggish_jax.distributed),
then real processes on localhost (slow): their extract shards are one process's, and their training steps one
process's steps."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from train_helpers import free_port, run_devices, run_processes
from vggish_jax import distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(settings, env=None, monkeypatch=None, tmp_path=None):
    """extract's parsed command line with `settings` ({key: value}) in its --config file, under `env`."""
    from vggish_jax import cli

    for k in distributed.ENV.values():
        monkeypatch.delenv(k, raising=False)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    config = tmp_path / "settings.toml"
    config.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items()))
    return cli.parse_args(["extract", "--out", str(tmp_path / "o"), "--config", str(config)])


def test_settings_and_environment(monkeypatch, tmp_path):
    assert distributed.settings(parse({}, monkeypatch=monkeypatch, tmp_path=tmp_path)) is None
    # single process: JAX untouched
    assert distributed.initialize(parse({}, monkeypatch=monkeypatch, tmp_path=tmp_path)) is False
    given = {"coordinator": "10.0.0.1:1234", "num_processes": 4, "process_id": 3}
    assert distributed.settings(parse(given, monkeypatch=monkeypatch, tmp_path=tmp_path)) == ("10.0.0.1:1234", 4, 3)
    env = {"JAX_COORDINATOR_ADDRESS": "h:9", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    assert distributed.settings(parse({}, env, monkeypatch, tmp_path)) == ("h:9", 2, 1)
    # the settings file wins over the environment
    assert distributed.settings(parse({"process_id": 0}, env, monkeypatch, tmp_path)) == ("h:9", 2, 0)


@pytest.mark.parametrize("given, env, message", [
    # The case of issue 21: only the coordinator in the environment, as jax.distributed.initialize() reads it.
    ({}, {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234"},
     "missing num_processes (or $JAX_NUM_PROCESSES), process_id (or $JAX_PROCESS_ID)"),
    ({"num_processes": 2, "process_id": 0}, {}, "missing coordinator (or $JAX_COORDINATOR_ADDRESS)"),
    ({"coordinator": "h:1", "num_processes": 2, "process_id": 2}, {}, "must be in 0 .. 1"),
    ({"coordinator": "h:1"}, {"JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "take whole numbers"),
    ({"coordinator": "h", "num_processes": 2, "process_id": 0}, {}, "takes HOST:PORT"),
])
def test_half_given_settings_are_refused_in_one_line(given, env, message, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=message.replace("$", r"\$").replace("(", r"\(").replace(")", r"\)")) as e:
        distributed.initialize(parse(given, env, monkeypatch, tmp_path))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("command", ["extract", "finetune"])
def test_commands_refuse_half_given_settings(command, tmp_path, monkeypatch, capsys):
    from vggish_jax import cli

    for k in distributed.ENV.values():
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    args = {"extract": ["--weights", str(tmp_path / "w"), "--out", str(tmp_path / "o")],
            "finetune": ["--workdir", str(tmp_path / "w")]}[command]
    assert cli.main([command, "--data-dir", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "num_processes" in err and "process_id" in err


@pytest.mark.slow
def test_two_processes_take_one_processs_training_steps(tmp_path):
    """Three steps (a checkpoint with each process's grain state after the second) on 2 processes x 1 CPU
    device end where 1 process on 1 device does: the same global batches, split between the processes."""
    one = run_devices(1, tmp_path / "w1", tmp_path / "p1.npz", 1, stop=3)
    two = run_processes(2, tmp_path / "w2", tmp_path / "p2", 1, stop=3)
    assert len(glob.glob(str(tmp_path / "w2" / "ckpt" / "latest" / "2" / "data" / "process_*-of-2.json"))) == 2
    for params in two:
        assert params.keys() == one.keys()
        for k in one:  # only the all-reduce order differs (Adam can lift its noise: see the 8-device test)
            np.testing.assert_allclose(params[k], one[k], rtol=1e-4, atol=1e-4, err_msg=k)


@pytest.fixture(scope="module")
def mini_build(tmp_path_factory):
    from mini_fma import make_mini_fma
    from vggish_jax.datasets import fma

    root = tmp_path_factory.mktemp("multihost_fma")
    mini = make_mini_fma(root / "manual", per_genre_per_split=1, seconds=1.2, seed=3, genres=("Folk", "Rock"))
    data_dir = str(root / "data")
    fma.prepare("fma/small", data_dir=data_dir, manual_dir=mini.manual_dir, workers=0)
    return data_dir


def _shards(out: str) -> dict[str, dict[str, np.ndarray]]:
    found = {}
    for path in sorted(glob.glob(os.path.join(out, "*", "shard-*.npz"))):
        with np.load(path) as z:
            found[os.path.relpath(path, out)] = {k: z[k] for k in z.files}
    return found


# The CLI in a process whose every shard starts `delay` s late and whose barrier gives up after `timeout` s:
# a slow host, without a hook in the package.
LAGGING = ("import sys, time; from vggish_jax import cli, distributed; from vggish_jax.pipeline import core; "
           "delay, distributed.BARRIER_TIMEOUT_S = float(sys.argv.pop(1)), float(sys.argv.pop(1)); "
           "run_shard = core.run_shard; "
           "core.run_shard = lambda *a, **k: (time.sleep(delay), run_shard(*a, **k))[1]; "
           "sys.exit(cli.main(sys.argv[1:]))")


def _extract_command(mini_build, weights, tmp_path):
    small_shards = tmp_path / "shards.toml"
    small_shards.write_text("shard_size = 1\n")
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV.values()}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    return ["extract", "--dataset", "fma/small", "--data-dir", mini_build, "--weights", weights, "--batch-size", "2",
            "--workers", "0", "--config", str(small_shards)], env


def _two_processes(args, env, tmp_path, out, delays=(0.0, 0.0), timeout=600.0):
    """`extract` on 2 processes on localhost, process 0 given its settings in a --config file, process 1 the
    JAX_* variables; each process's shards start delays[i] s late. Returns [(returncode, stdout, stderr)]."""
    coordinator = f"127.0.0.1:{free_port()}"
    process_0 = tmp_path / "process_0.toml"
    process_0.write_text(f'shard_size = 1\ncoordinator = "{coordinator}"\nnum_processes = 2\nprocess_id = 0\n')
    # process 0's --config comes last, so it is the one read (argparse: the last one given wins)
    commands = [args + ["--out", out, "--config", str(process_0)], args + ["--out", out]]
    envs = [env, dict(env, JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID="1")]
    procs = [subprocess.Popen([sys.executable, "-c", LAGGING, str(delay), str(timeout), *command], env=e,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for delay, command, e in zip(delays, commands, envs)]
    try:
        results = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, *r) for p, r in zip(procs, results)]


@pytest.mark.slow
def test_two_processes_write_one_processs_shards(mini_build, small_weights_dir, tmp_path):
    """`extract` on 2 processes on localhost, process 1 two seconds slower per shard: together they write
    exactly the shards 1 process writes, and process 0 waits for process 1, so ONE run ends complete."""
    args, env = _extract_command(mini_build, small_weights_dir, tmp_path)
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    single = subprocess.run([sys.executable, "-m", "vggish_jax.cli", *args, "--out", one], env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    results = _two_processes(args, env, tmp_path, two, delays=(0.0, 2.0))
    for i, (code, _, err) in enumerate(results):
        assert code == 0, f"process {i}: {err[-3000:]}"
    want, got = _shards(one), _shards(two)
    assert len(want) >= 4 and sorted(got) == sorted(want)  # every shard, each written by one of the processes
    for name in want:
        assert want[name].keys() == got[name].keys(), name
        for key in want[name]:
            np.testing.assert_array_equal(got[name][key], want[name][key], err_msg=f"{name}: {key}")
    info = json.load(open(os.path.join(two, "info.json")))
    assert info["complete"] is True, results[0][2][-3000:]
    assert info["num_clips"] == json.load(open(os.path.join(one, "info.json")))["num_clips"]
    assert "rerun" not in results[0][1] + results[0][2]


@pytest.mark.slow
def test_a_process_past_the_barrier_timeout_leaves_the_store_incomplete(mini_build, small_weights_dir, tmp_path):
    """Process 1 still busy when the barrier's timeout (1 s here) passes: process 0 says so, with the timeout,
    leaves info.json incomplete and says to rerun; the rerun (one process) completes it."""
    args, env = _extract_command(mini_build, small_weights_dir, tmp_path)
    out = str(tmp_path / "two")
    results = _two_processes(args, env, tmp_path, out, delays=(0.0, 4.0), timeout=1.0)
    code, stdout, stderr = results[0]
    assert code == 0, stderr[-3000:]
    assert "not every process reached" in stderr and "within 1 s" in stderr, stderr[-3000:]
    assert "rerun the same command to complete it" in stderr + stdout
    assert json.load(open(os.path.join(out, "info.json")))["complete"] is False
    again = subprocess.run([sys.executable, "-m", "vggish_jax.cli", *args, "--out", out], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.load(open(os.path.join(out, "info.json")))["complete"] is True
