"""XLA:CPU's batch-size cliffs on VGGish: frames/s by batch under several XLA_FLAGS, each as a fraction of the
same process's measured float32 matmul rate (the roof), plus which op the compiled HLO runs the convolutions
and dots as (XLA's own convolution/dot, oneDNN or XNNPACK custom calls / fusions).

Each configuration runs in its own process (XLA_FLAGS are read once); configurations are interleaved over
rounds so machine load hits them alike.

    python -m experiments.cpu_cliffs [--batches 8,16,62,64] [--rounds 1] [--out results/bench-cliffs-<m>.json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

# This jaxlib (0.10) hands the whole VGGish graph to YNNPACK as ONE fusion by default (`ynn_fusion` in the
# compiled HLO); --xla_cpu_experimental_ynn_fusion_type in overwrite mode picks what YNNPACK gets instead.
YNN = "--xla_cpu_experimental_ynn_fusion_type="
CONFIGS = {
    "default": "",
    "ynn_individual_ops": YNN + "individual_convolution,individual_dot",
    "ynn_convs_only": YNN + "individual_convolution",
    "ynn_dots_only": YNN + "individual_dot",
    "ynn_eltwise_only": YNN + "eltwise",
    "xnnpack_off": "--xla_cpu_use_xnnpack=false",
}

CHILD = r"""
import json, re, sys, time
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from benchmarks.common import flops_per_frame
from vggish_jax.models.vggish import modeling

def best(f, *a, n):
    jax.block_until_ready(f(*a))
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t0)
    return min(ts)

a = jnp.asarray(np.random.default_rng(0).standard_normal((2048, 2048)), jnp.float32)
mm = jax.jit(lambda x: x @ x)
out = {"matmul_gflops": 2 * 2048 ** 3 / best(mm, a, n=5) / 1e9, "batches": {}}
g, s = nnx.split(modeling.build(modeling.random(0)))
fwd = jax.jit(lambda s, x: nnx.merge(g, s)(x))
fpf = flops_per_frame()
for b in map(int, sys.argv[1].split(",")):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((b, 96, 64)), jnp.float32)
    hlo = fwd.lower(s, x).compile().as_text()
    entry = hlo[hlo.index("ENTRY"):]
    ops = sorted(set(re.findall(r"%(\w+?)(?:\.\d+)? = \S+ (?:fusion|custom-call|convolution|dot)\(", entry)))
    t = best(fwd, s, x, n=int(sys.argv[2]))
    out["batches"][b] = {"frames_per_second": b / t, "gflops": b * fpf / t / 1e9, "hlo_ops": ops}
print("@@" + json.dumps(out))
"""


def run_config(flags: str, batches: str, repeats: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD, batches, str(repeats)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    r = json.loads(proc.stdout.rsplit("@@", 1)[1])
    for v in r["batches"].values():
        v["fraction_of_matmul"] = v["gflops"] / r["matmul_gflops"]
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="8,16,62,64")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from benchmarks.common import machine_info

    report = {"machine": machine_info(), "configs": {k: CONFIGS[k] for k in args.configs.split(",")}, "rounds": []}
    for _ in range(args.rounds):
        rnd = {}
        for name, flags in report["configs"].items():
            rnd[name] = run_config(flags, args.batches, args.repeats)
            r = rnd[name]
            line = "error: " + r["error"] if "error" in r else f"matmul {r['matmul_gflops']:.0f} GFLOP/s; " + ", ".join(
                f"b{b}: {v['frames_per_second']:.0f} f/s ({v['fraction_of_matmul']:.2f})" for b, v in r["batches"].items())
            print(f"{name:18s} {line}", flush=True)
        report["rounds"].append(rnd)
    report["load_average_end"] = list(os.getloadavg())
    if args.out:
        from vggish_jax import atomic

        atomic.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
