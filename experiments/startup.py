"""Start-up of `vggish-jax embed` with and without the persistent compilation cache (compilation_cache.py).

Each run is a fresh process that imports the library, loads weights, and embeds one file twice; it reports
where its time went (import, load, first call = trace + compile-or-cache-load + run, second call = run).
Runs alternate cache off / warm cache so machine load hits both alike.

    python -m experiments.startup [--runs 3] [--out results/bench-startup.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from vggish_jax.pipeline.embed import load_pretrained
t1 = time.perf_counter()
emb = load_pretrained(sys.argv[1])
t2 = time.perf_counter()
emb.embed_file(sys.argv[2])
t3 = time.perf_counter()
emb.embed_file(sys.argv[2])
t4 = time.perf_counter()
print("@@" + json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2, "second_call_s": t4 - t3}))
"""


def one_run(weights: str, audio: str, cache: str) -> dict:
    env = dict(os.environ, VGGISH_JAX_CACHE_DIR=cache)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, weights, audio], capture_output=True, text=True, env=env,
                          check=True)
    r = json.loads(proc.stdout.rsplit("@@", 1)[1])
    r["process_s"] = time.perf_counter() - t0
    # what the cache can save: first call minus a compiled call
    r["compile_share_s"] = r["first_call_s"] - r["second_call_s"]
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from benchmarks.common import machine_info
    from vggish_jax.models.vggish import modeling, params

    audio = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vggish_jax", "assets",
                         "example.mp3")
    with tempfile.TemporaryDirectory() as d:
        weights, cache = os.path.join(d, "w"), os.path.join(d, "cache")
        params.save(weights, modeling.random(0), metadata={"source": "random", "seed": 0})
        one_run(weights, audio, cache)  # fills the cache (and the OS file cache for both modes)
        runs = {"off": [], "warm": []}
        for _ in range(args.runs):
            runs["off"].append(one_run(weights, audio, "off"))
            runs["warm"].append(one_run(weights, audio, cache))
        entries = sorted(os.listdir(cache))
    med = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items()}
    report = {"machine": machine_info(), "audio": "vggish_jax/assets/example.mp3", "runs": runs, "median": med,
              "cache_entries": entries,
              "first_call_saved_s": med["off"]["first_call_s"] - med["warm"]["first_call_s"],
              "process_saved_s": med["off"]["process_s"] - med["warm"]["process_s"]}
    print(json.dumps({k: report[k] for k in ("median", "cache_entries", "first_call_saved_s", "process_saved_s")},
                     indent=1))
    if args.out:
        from vggish_jax import atomic

        atomic.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
