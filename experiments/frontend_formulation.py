"""Which float32 formulation of the JAX frontend is faster on this backend, and how exact each one is.

    python -m experiments.frontend_formulation [--batch 16] [--seconds 30] [--repeats 7]
        [--out results/frontend_formulation.json]

Times `frontend_jax.waveforms_to_examples` on one [batch, seconds * 16 kHz] float32 batch with the rfft
("fft") and the DFT-as-strided-conv over the mel bins ("dft") formulations, interleaved (fft, dft, fft, ...)
after a warm-up so both see the same machine load; reports the median ms per clip, the ratio from this one
run, and the CPU time each used (process time: less sensitive to other jobs on a shared machine). Also the
max |log-mel difference| to the NumPy oracle per signal (noise, tones, chirp, quiet noise, the bundled music
clip) for both formulations in float32 and float64.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time

import jax
import numpy as np

import vggish_jax
from vggish_jax import audio
from vggish_jax.models.vggish import frontend, frontend_jax

EXAMPLE_CLIP = os.path.join(os.path.dirname(vggish_jax.__file__), "assets", "example.mp3")


def signals(seconds: float = 8.0, sr: int = 16000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    return {
        "noise": (0.3 * rng.standard_normal(t.size)).astype(np.float32),
        "tones": (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3150 * t)).astype(np.float32),
        "chirp": (0.5 * np.sin(2 * np.pi * (50 * t + 0.5 * (7900 - 50) / seconds * t * t))).astype(np.float32),
        "quiet": (1e-4 * rng.standard_normal(t.size)).astype(np.float32),
        "music": audio.load(EXAMPLE_CLIP, target_sr=sr)[0],
    }


def accuracy() -> dict:
    out = {}
    for name, x in signals().items():
        want = frontend.waveform_to_examples(x, 16000)
        for formulation in frontend_jax.FORMULATIONS:
            for precision in ("float32", "float64"):
                got = np.asarray(frontend_jax.waveforms_to_examples(x[None], precision=precision,
                                                                    formulation=formulation))[0]
                out[f"{name}/{formulation}/{precision}"] = float(np.abs(got - want).max())
    return out


def timing(batch: int, seconds: float, repeats: int) -> dict:
    x = (0.3 * np.random.default_rng(1).standard_normal((batch, int(seconds * 16000)))).astype(np.float32)
    def run(formulation):
        frontend_jax.waveforms_to_examples(x, precision="float32", formulation=formulation).block_until_ready()

    fns = {f: functools.partial(run, f) for f in frontend_jax.FORMULATIONS}
    times = {f: [] for f in fns}
    cpu = {f: [] for f in fns}
    for f in fns:
        fns[f]()  # compile
    for _ in range(repeats):
        for f, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[f].append(time.perf_counter() - t0)
            cpu[f].append(time.process_time() - c0)
    ms = {f: 1e3 * float(np.median(t)) / batch for f, t in times.items()}
    cpu_ms = {f: 1e3 * float(np.median(t)) / batch for f, t in cpu.items()}
    return {"ms_per_clip_median": ms, "cpu_ms_per_clip_median": cpu_ms,
            "ms_per_clip_all": {f: [round(1e3 * v / batch, 2) for v in t] for f, t in times.items()},
            "dft_speedup_over_fft": ms["fft"] / ms["dft"],
            "dft_cpu_time_ratio_fft_over_dft": cpu_ms["fft"] / cpu_ms["dft"]}


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "cpu": cpu,
            "cpus": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__,
            "load_average_at_start": os.getloadavg()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default="results/frontend_formulation.json")
    args = p.parse_args(argv)
    report = {"machine": machine(), "batch": args.batch, "seconds": args.seconds, "repeats": args.repeats,
              "timing_float32": timing(args.batch, args.seconds, args.repeats),
              "auto_choice": frontend_jax.resolve_formulation("auto"),
              "max_abs_logmel_diff_to_numpy_oracle": accuracy()}
    report["machine"]["load_average_at_end"] = os.getloadavg()
    from vggish_jax import atomic

    atomic.write_json(args.out, report)
    t = report["timing_float32"]
    print(f"fft {t['ms_per_clip_median']['fft']:.2f} ms/clip, dft {t['ms_per_clip_median']['dft']:.2f} ms/clip: "
          f"dft is {t['dft_speedup_over_fft']:.2f}x fft (batch {args.batch} x {args.seconds:g} s, "
          f"{report['machine']['backend']}); CPU time per clip fft {t['cpu_ms_per_clip_median']['fft']:.2f}, "
          f"dft {t['cpu_ms_per_clip_median']['dft']:.2f} ms; wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
