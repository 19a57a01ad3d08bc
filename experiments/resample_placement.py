"""Where should resampling to 16 kHz run: host (decode workers) or device (after a native-rate decode)?
(issue 20 item 3; the rule is `vggish_jax.pipeline.placement`)

1. agreement: `Embedder.embed_files` with resample='host' vs 'device' (full-size VGGish, random weights) on
   the bundled clip (22.05 kHz mp3), it upsampled to 44.1 kHz (wav) and to 48 kHz (mp3): max |diff| of the
   raw embeddings, absolute and relative to the largest |embedding|.
2. end to end: `Embedder.embed_files` of N generated 30-s 44.1 kHz stereo mp3s with `workers` jax-free decode
   processes (as `extract`) and decode threads (as `embed`), host vs device, one warm-up each, then
   interleaved repeats in one process (medians): the same-run ratio device / host. The device here is
   whatever JAX's default backend is.

    python experiments/resample_placement.py [--files 8] [--repeats 2] [--out results/resample-placement-2core-cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def _files(d: str, n: int, seconds: float = 30.0) -> list[str]:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(44100 * seconds)) / 44100
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        x = np.stack([0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t), 0.05 * rng.standard_normal(t.size)], 1)
        paths.append(os.path.join(d, f"c{i}.mp3"))
        sf.write(paths[-1], x.astype(np.float32), 44100)
    return paths


def agreement(d: str, model_params) -> dict:
    import numpy as np
    import soundfile as sf
    from scipy import signal

    from vggish_jax import audio, predict
    from vggish_jax.pipeline.embed import Embedder

    x, sr = audio.load(predict.EXAMPLE_CLIP)
    files = {"bundled clip, 22.05 kHz mp3": predict.EXAMPLE_CLIP}
    for rate, ext in ((44100, "wav"), (48000, "mp3")):
        g = np.gcd(rate, sr)
        y = signal.resample_poly(x, rate // g, sr // g).astype(np.float32)
        files[f"bundled clip at {rate / 1000:g} kHz {ext}"] = p = os.path.join(d, f"clip{rate}.{ext}")
        sf.write(p, y, rate)
    out = {}
    emb = {w: Embedder(model_params, resample=w) for w in ("host", "device")}
    for name, path in files.items():
        a, b = (emb[w].embed_files([path], on_error="raise")[0][path] for w in ("host", "device"))
        diff = float(np.abs(a - b).max())
        out[name] = {"frames": int(a.shape[0]), "max_abs_diff": diff,
                     "max_abs_diff_relative": diff / float(np.abs(a).max())}
    return out


def end_to_end(paths: list[str], model_params, workers: int, repeats: int) -> dict:
    from vggish_jax.pipeline.embed import Embedder

    emb = {w: Embedder(model_params, resample=w) for w in ("host", "device")}
    runs = [(w, mode) for mode in ("processes", "threads") for w in emb]
    times = {f"{w}_{mode}": [] for w, mode in runs}
    for w, mode in runs:  # warm-up: compilations, worker imports
        emb[w].embed_files(paths[:2], workers=workers, processes=mode == "processes")
    for _ in range(repeats):
        for w, mode in runs:
            t0 = time.perf_counter()
            found, errors = emb[w].embed_files(paths, workers=workers, processes=mode == "processes")
            times[f"{w}_{mode}"].append(time.perf_counter() - t0)
            assert len(found) == len(paths), errors
    med = {k: statistics.median(t) for k, t in times.items()}
    return {"clips": len(paths), "clip_seconds": 30.0, "source": "44.1 kHz stereo mp3", "decode_workers": workers,
            "repeats": repeats, "seconds": times, "median_s": med,
            "clips_per_second": {k: len(paths) / m for k, m in med.items()},
            "device_over_host_time": {mode: med[f"device_{mode}"] / med[f"host_{mode}"]
                                      for mode in ("processes", "threads")}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="results/resample-placement-2core-cpu.json")
    args = ap.parse_args(argv)

    import jax

    from benchmarks.common import machine_info
    from vggish_jax.models.vggish import modeling
    from vggish_jax.pipeline import placement

    model_params = modeling.random(0)
    with tempfile.TemporaryDirectory() as d:
        report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_info(),
                  "backend": jax.default_backend(), "auto_resamples_on_device": placement.resample_on_device("auto"),
                  "agreement": agreement(d, model_params)}
        print(json.dumps(report["agreement"], indent=1), flush=True)
        report["end_to_end"] = end_to_end(_files(d, args.files), model_params, args.workers, args.repeats)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report["end_to_end"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
