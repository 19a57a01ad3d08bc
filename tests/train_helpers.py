"""Shared pieces for the fine-tuning tests (imported by them and by their subprocesses)."""
import os
import subprocess
import sys

import numpy as np

from vggish_jax.train.config import Config

TINY = Config(epochs=2, batch_size=8, examples_per_clip=2, width_divisor=16, head_hidden=16, init="random",
              checkpoint_every=2, prefetch=1, learning_rate=3e-3)
# Every augmentation of the waveform path, sized for synthetic_waveform_sources' clips (<= 3.2 s).
AUDIO_AUG = dict(random_crop=True, max_clip_samples=48000, gain_db=6.0, mixup_alpha=0.4, spec_augment=True)


def synthetic_sources(n_train=32, n_val=16, n_test=16, classes=4, seed=0):
    """Clips whose log-mels carry a class-dependent band of energy: separable, like genres by spectrum."""
    rng = np.random.default_rng(seed)

    def clips(n):
        out = []
        for i in range(n):
            c = i % classes
            mel = rng.normal(size=(int(rng.integers(1, 4)), 96, 64)).astype(np.float32) * 0.5
            mel[:, :, c * 16:(c + 1) * 16] += 2.0
            out.append({"mel": mel, "label": c})
        return out

    return {"train": clips(n_train), "validation": clips(n_val), "test": clips(n_test)}


def synthetic_waveform_sources(n_train=32, n_val=8, n_test=8, classes=4, seed=0):
    """16 kHz int16 clips whose class is the pitch of a tone (over noise), 1 to 3.2 s long, so that some are
    cyclically padded and some leave crop room; each record also holds its NumPy-oracle log-mels ('mel'), as
    the `*_waveform` FMA builds do."""
    from vggish_jax.models.vggish import frontend

    rng = np.random.default_rng(seed)

    def clips(n):
        out = []
        for i in range(n):
            c = i % classes
            t = np.arange(int(rng.integers(15600, 51200))) / 16000.0
            x = 0.3 * np.sin(2 * np.pi * 300.0 * 2.0 ** c * t + rng.uniform(0, 6.3)) + 0.05 * rng.standard_normal(t.size)
            wave = np.round(np.clip(x * rng.uniform(0.3, 1.0), -1, 1) * 32767.0).astype(np.int16)
            mel = frontend.waveform_to_examples(wave.astype(np.float32) / 32767.0, 16000)
            out.append({"waveform": wave, "mel": mel, "label": c})
        return out

    return {"train": clips(n_train), "validation": clips(n_val), "test": clips(n_test)}


def flat_params(params) -> dict:
    import jax
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(params)}


def run_devices(n_devices, workdir, out, epochs, stop=None):
    """Run this file's __main__ in a subprocess with n fake CPU devices; return the params it ends with."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.path.dirname(os.path.abspath(__file__)) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, os.path.abspath(__file__), str(workdir), str(out), str(epochs)]
    proc = subprocess.run(cmd + ([str(stop)] if stop else []), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as z:
        assert int(z["devices"]) == n_devices
        return {k: z[k] for k in z.files if k not in ("devices", "processes")}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(n_processes, workdir, out, epochs, stop=None, timeout=600):
    """Run this file's __main__ as n real processes of one jax.distributed run on localhost (one CPU device
    each, the coordinator on a free port, given through the JAX_* environment variables); return each
    process's final params."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{free_port()}", JAX_NUM_PROCESSES=str(n_processes),
               PYTHONPATH=os.path.dirname(os.path.abspath(__file__)) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, os.path.abspath(__file__), str(workdir), str(out), str(epochs)] + ([str(stop)] if stop else [])
    procs = [subprocess.Popen(cmd, env=dict(env, JAX_PROCESS_ID=str(i)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(n_processes)]
    try:
        errs = [p.communicate(timeout=timeout)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i}: " + errs[i][-3000:]
    params = []
    for i in range(n_processes):
        with np.load(f"{out}.p{i}.npz") as z:
            assert int(z["devices"]) == n_processes and int(z["processes"]) == n_processes
            params.append({k: z[k] for k in z.files if k not in ("devices", "processes")})
    return params


if __name__ == "__main__":
    # python train_helpers.py WORKDIR OUT.npz EPOCHS [STOP_AFTER]: train TINY on the synthetic sources here
    # (the device count comes from XLA_FLAGS) and save the params it ends with. TRAIN_HELPERS_INPUT=waveform:
    # the synthetic waveform sources with every augmentation on. JAX_COORDINATOR_ADDRESS etc. set: one process
    # of a multi-host run, joined as the commands join (vggish_jax.distributed), saving to OUT.p<index>.npz.
    import argparse

    import jax

    from vggish_jax import distributed

    multi = distributed.initialize(argparse.Namespace())  # from the JAX_* variables, as the commands do

    from vggish_jax.train.loop import train

    workdir, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    stop = int(sys.argv[4]) if len(sys.argv) > 4 else None
    if os.environ.get("TRAIN_HELPERS_INPUT") == "waveform":
        cfg, sources = TINY.replace(epochs=epochs, **AUDIO_AUG), synthetic_waveform_sources()
    else:
        cfg, sources = TINY.replace(epochs=epochs), synthetic_sources()
    r = train(cfg, sources, 4, workdir, log=lambda m: None, stop_after_steps=stop)
    if multi:
        out = f"{out}.p{jax.process_index()}.npz"
    np.savez(out, devices=jax.device_count(), processes=jax.process_count(), **flat_params(r["params"]))
