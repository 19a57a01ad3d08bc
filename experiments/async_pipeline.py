"""Does the asynchronous device pipeline overlap host and device work? (issue 20 item 2)

For 1 and 4 fake CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count, one subprocess each), on
generated 30-s 44.1 kHz stereo wav files and the full-size VGGish (random weights):
  host_s      decoding + resampling every file in the decode threads `iter_files` uses, no device work
  device_s    embedding the already decoded waveforms (embed_stream), synchronously (depth 0)
  sync_s      `Embedder.iter_files` end to end with depth 0: each batch's result fetched before the next
              batch is built (the pipeline before this change)
  async_s     the same with depth 2 (the default: two batches in flight)
Times are medians of interleaved repeats in one process. Ratios to read: async_s / (host_s + device_s)
(<= 1: the streamed path is no slower than doing the two in turn) and async_s / sync_s (<= 1: no worse than
before). Writes results/async-pipeline-<machine>-<date>.json.

    python experiments/async_pipeline.py [--files 8] [--repeats 3]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _child(args) -> dict:
    import numpy as np
    import soundfile as sf
    import jax

    from vggish_jax.models.vggish import modeling
    from vggish_jax.pipeline import host
    from vggish_jax.pipeline.device import Embedder

    d = tempfile.mkdtemp()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(args.files):
        t = np.arange(30 * 44100) / 44100
        x = 0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
        paths.append(os.path.join(d, f"clip{i}.wav"))
        sf.write(paths[-1], np.stack([x, 0.5 * x], axis=1).astype(np.float32), 44100)
    emb = Embedder(modeling.random(0), batch_size=args.batch_size)
    waves = [host.load_clip(p) for p in paths]
    list(emb.iter_files(paths, workers=args.workers))  # compile every shape once

    def host_only():
        list(host.prefetch(paths, host.decode_for_stream, args.workers))

    def device_only():
        emb.depth = 0
        list(emb.embed_stream(enumerate(waves)))

    def streamed(depth):
        def run():
            emb.depth = depth
            list(emb.iter_files(paths, workers=args.workers))
        return run

    runs = {"host_s": host_only, "device_s": device_only, "sync_s": streamed(0), "async_s": streamed(2)}
    times = {k: [] for k in runs}
    for _ in range(args.repeats):  # interleaved, so drifting load hits every variant alike
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["all_s"] = times
    out["devices"] = jax.device_count()
    out["async_vs_host_plus_device"] = out["async_s"] / (out["host_s"] + out["device_s"])
    out["async_vs_sync"] = out["async_s"] / out["sync_s"]
    out["async_vs_max_of_host_and_device"] = out["async_s"] / max(out["host_s"], out["device_s"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=1, help="decode threads (1 on a 2-core machine)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 4])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return 0
    from benchmarks.common import machine_info

    result = {"what": __doc__, "settings": {k: v for k, v in vars(args).items() if k != "child"}, "runs": {}}
    for n in args.devices:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--files", str(args.files), "--repeats",
               str(args.repeats), "--workers", str(args.workers), "--batch-size", str(args.batch_size)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        result["runs"][f"{n}_devices"] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(n, "devices:", {k: round(v, 3) for k, v in result["runs"][f"{n}_devices"].items()
                              if isinstance(v, float)}, flush=True)
    result["machine"] = machine_info()
    machine = f"{os.cpu_count()}core-" + "-".join(result["machine"]["cpu_model"].lower().split()[:2])
    day = datetime.date.today().isoformat()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "results", f"async-pipeline-{machine}-{day}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
