"""What every benchmark shares: the timer, VGGish's FLOPs per frame, machine facts, peak memory, spec-sheet
peaks for MFU, and the environment for a benchmark's child processes."""
from __future__ import annotations

import os
import platform
import socket
import statistics
import time

import numpy as np

# The repository root: child processes import `benchmarks` from here (it is not installed).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(**extra: str) -> dict:
    """os.environ for a child Python process, with the repository root first on PYTHONPATH, plus `extra`."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def flops_per_frame(width_divisor: int = 1) -> float:
    """Multiply-adds x 2 of one 96x64 example through VGGish, from the architecture (`width_divisor`: the
    same-shaped small model, every hidden width divided, the 128-d output kept)."""
    from vggish_jax.models.vggish.modeling import CONV_CHANNELS, FC_FEATURES, POOL_AFTER

    h, w, c_in, macs = 96, 64, 1, 0
    for name, c_out in CONV_CHANNELS:
        c_out //= width_divisor
        macs += h * w * 9 * c_in * c_out
        c_in = c_out
        if name in POOL_AFTER:
            h, w = h // 2, w // 2
    f_in = h * w * c_in
    for name, f_out in FC_FEATURES:
        f_out = f_out if name == "fc2" else f_out // width_divisor
        macs += f_in * f_out
        f_in = f_out
    return 2.0 * macs


def timed(fn, repeats: int) -> dict:
    """Calls fn once untimed (compilation, caches), then `repeats` times: median, min and max seconds."""
    fn()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def machine_info() -> dict:
    """Host, CPU, cores, JAX backend and devices, load average and library versions, for a results file."""
    import jax

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__, "jax": jax.__version__}
    for mod in ("flax", "torch", "scipy", "librosa"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    return {"host": socket.gethostname(), "cpu_model": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()],
            "device_kind": jax.devices()[0].device_kind, "load_average": load_average(), "versions": versions}



def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, which (unlike ru_maxrss) does not count the memory
    of the process that forked it, carried across exec."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024



# Spec-sheet dense peaks (FLOP/s) for MFU: float32 matmuls run as TF32 on these GPUs by XLA's default.
PEAK_FLOPS = {"H100": {"float32": 494.7e12, "bfloat16": 989.4e12}, "H200": {"float32": 494.7e12, "bfloat16": 989.4e12},
              "A100": {"float32": 156e12, "bfloat16": 312e12}, "TPU v4": {"bfloat16": 275e12},
              "TPU v5 lite": {"bfloat16": 197e12}, "TPU v5p": {"bfloat16": 459e12}, "TPU v6": {"bfloat16": 918e12}}


def peak_flops(device_kind: str) -> dict | None:
    """The spec-sheet peaks of a device kind by dtype, or None for one not listed."""
    return next((v for k, v in PEAK_FLOPS.items() if k.lower() in device_kind.lower()), None)


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (a busy machine slows every timing), or None where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def decode_16k(path: str, pad: bool = False) -> np.ndarray | str:
    """`host.load_clip` for worker pools: the waveform, or the one-line error text instead of raising, so one
    corrupt mp3 cannot take a pool down."""
    from vggish_jax import audio
    from vggish_jax.models.vggish import frontend
    from vggish_jax.pipeline import host

    try:
        return host.load_clip(path, pad=pad)
    except (audio.AudioError, frontend.TooShortError) as e:
        return str(e)
    except Exception as e:  # a decoder crash on one file is that file's problem
        return f"{path}: cannot decode ({type(e).__name__}: {e}); the file is corrupt"
