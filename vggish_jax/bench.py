"""Throughput benchmarks: frontend, decode, embedding (vs a PyTorch VGGish and the matmul rate), end to end,
training. Each section runs in its own process so its peak RSS is its own.

    python -m vggish_jax.bench [--quick] [--out results/]     (same as `vggish-jax bench`)

Writes results/bench-<host>-<date>.json and .md with machine info. Timings are medians of repeats after a
warm-up (compile) run, with min and max. Ratios (ours / reference, fraction of the matmul rate) survive noisy
machines better than absolute numbers.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SECTIONS = ("matmul", "frontend", "decode", "embedding", "end_to_end", "training", "fad", "beam")
CLIP_SECONDS = 30.0


def flops_per_frame() -> float:
    """Multiply-adds x 2 of one 96x64 example through VGGish, from the architecture."""
    from vggish_jax.models.vggish.modeling import CONV_CHANNELS, FC_FEATURES, POOL_AFTER

    h, w, c_in, macs = 96, 64, 1, 0
    for name, c_out in CONV_CHANNELS:
        macs += h * w * 9 * c_in * c_out
        c_in = c_out
        if name in POOL_AFTER:
            h, w = h // 2, w // 2
    f_in = h * w * c_in
    for _, f_out in FC_FEATURES:
        macs += f_in * f_out
        f_in = f_out
    return 2.0 * macs


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up: compilation, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def machine_info() -> dict:
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
            "jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()], "versions": versions}


# ---- sections (each runs in a fresh process) ----

def section_matmul(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp

    n = 2048 if quick else 4096
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    t = timed(lambda: f(a, a).block_until_ready(), 2 if quick else 5)
    out = {"n": n, "jax": t, "jax_gflops": 2 * n ** 3 / t["median_s"] / 1e9}
    try:
        import torch
        ta = torch.randn(n, n)
        tt = timed(lambda: ta @ ta, 2 if quick else 5)
        out.update(torch=tt, torch_gflops=2 * n ** 3 / tt["median_s"] / 1e9, torch_threads=torch.get_num_threads())
    except ImportError:
        out["torch"] = "not installed (pip install 'vggish-jax[bench]')"
    return out


def _clip(sr=16000, seconds=CLIP_SECONDS, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(sr * seconds))).astype(np.float32)


def section_frontend(quick: bool) -> dict:
    import jax

    from vggish_jax.models.vggish import frontend, frontend_jax

    out = {"clip_seconds": CLIP_SECONDS, "jax": {}, "jax_float32": {}}
    x = _clip()
    t = timed(lambda: frontend.waveform_to_examples(x, 16000), 1 if quick else 3)
    out["numpy"] = {**t, "audio_seconds_per_second": CLIP_SECONDS / t["median_s"]}
    for precision, key in (("auto", "jax"), ("float32", "jax_float32")):
        for b in ((1, 8) if quick else (1, 8, 32, 128)):
            batch = jax.device_put(np.stack([_clip(seed=i) for i in range(b)]))
            t = timed(lambda: frontend_jax.waveforms_to_examples(batch, precision=precision).block_until_ready(),
                      2 if quick else 5)
            out[key][b] = {**t, "audio_seconds_per_second": b * CLIP_SECONDS / t["median_s"]}
    out["jax_precision_auto"] = frontend_jax.resolve_precision("auto")
    try:
        import librosa

        def lib():
            s = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, win_length=400, hop_length=160,
                                               window="hann", center=False, power=1.0, n_mels=64, fmin=125,
                                               fmax=7500, htk=True, norm=None)
            return np.log(s + 0.01)
        t = timed(lib, 1 if quick else 3)
        out["librosa"] = {**t, "audio_seconds_per_second": CLIP_SECONDS / t["median_s"]}
    except ImportError:
        out["librosa"] = "not installed (pip install 'vggish-jax[bench]')"
    best = max(v["audio_seconds_per_second"] for v in out["jax"].values())
    out["jax_best_vs_numpy"] = best / out["numpy"]["audio_seconds_per_second"]
    return out


def _mp3s(directory: str, n: int) -> list[str]:
    import soundfile as sf

    paths = []
    for i in range(n):
        t = np.arange(int(44100 * CLIP_SECONDS)) / 44100
        x = np.stack([np.sin(2 * np.pi * (220 + 40 * i) * t), 0.1 * np.random.default_rng(i).standard_normal(t.size)], 1)
        p = os.path.join(directory, f"clip{i}.mp3")
        sf.write(p, (0.3 * x).astype(np.float32), 44100)
        paths.append(p)
    return paths


def section_decode(quick: bool) -> dict:
    import concurrent.futures as cf
    import multiprocessing as mp

    from vggish_jax.pipeline.embed import file_examples

    n = 2 if quick else 8
    with tempfile.TemporaryDirectory() as d:
        paths = _mp3s(d, n)
        t = timed(lambda: [file_examples(p) for p in paths], 1 if quick else 2)
        out = {"clips": n, "clip_seconds": CLIP_SECONDS, "one_worker_clips_per_second": n / t["median_s"], "one_worker": t}
        workers = os.cpu_count() or 1
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            t = timed(lambda: list(pool.map(file_examples, paths)), 1 if quick else 2)
        out.update(workers=workers, pool=t, pool_clips_per_second=n / t["median_s"])
    return out


def section_embedding(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from vggish_jax.models.vggish import params

    p = params.random(0)
    fpf = flops_per_frame()
    batches = (1, 32) if quick else (1, 8, 32, 64, 128, 256)
    # bfloat16 matmuls/convs are emulated on most CPUs (slow); fewer sizes keep the full run in minutes.
    bf16_batches = (1, 32) if quick else (1, 32, 128)
    out = {"flops_per_frame": fpf, "flax": {"float32": {}, "bfloat16": {}}, "torch": {}}
    for dtype in ("float32", "bfloat16"):
        graphdef, state = nnx.split(params.build(p, dtype=jnp.dtype(dtype)))
        fwd = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
        for b in (batches if dtype == "float32" else bf16_batches):
            x = jax.device_put(np.random.default_rng(0).standard_normal((b, 96, 64)).astype(np.float32))
            t = timed(lambda: fwd(state, x).block_until_ready(), 2 if quick else 3)
            out["flax"][dtype][b] = {**t, "frames_per_second": b / t["median_s"],
                                     "gflops": b * fpf / t["median_s"] / 1e9}
    try:
        import torch
        from vggish_jax.models.vggish.torch_reference import TorchVGGish

        model = TorchVGGish().eval()
        with torch.inference_mode():
            for b in batches:
                x = torch.randn(b, 1, 96, 64)
                t = timed(lambda: model(x), 2 if quick else 3)
                out["torch"][b] = {**t, "frames_per_second": b / t["median_s"], "gflops": b * fpf / t["median_s"] / 1e9}
        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        out["torch"] = "not installed (pip install 'vggish-jax[bench]')"
    return out


def section_end_to_end(quick: bool) -> dict:
    from vggish_jax.models.vggish import params
    from vggish_jax.pipeline.embed import Embedder

    n = 2 if quick else 8
    emb = Embedder(params.random(0), batch_size=64)
    with tempfile.TemporaryDirectory() as d:
        paths = _mp3s(d, n)
        t = timed(lambda: emb.embed_files(paths, workers=os.cpu_count() or 1), 1 if quick else 2)
        x = np.zeros((31 * n, 96, 64), np.float32)
        t_model = timed(lambda: emb.embed_examples(x), 1 if quick else 2)
    return {"clips": n, "end_to_end": t, "clips_per_second": n / t["median_s"], "model_only": t_model,
            "model_only_clips_per_second": n / t_model["median_s"],
            "end_to_end_vs_model_only": t_model["median_s"] / t["median_s"]}


def section_training(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from vggish_jax.models.vggish import params

    model = params.build(params.random(0))
    graphdef, state = nnx.split(model)
    key = jax.random.PRNGKey(0)
    head = {"w1": jax.random.normal(key, (31 * 128, 256)) * 0.02, "b1": jnp.zeros(256),
            "w2": jax.random.normal(key, (256, 8)) * 0.02, "b2": jnp.zeros(8)}
    variables = {"backbone": state, "head": head}
    opt = optax.adam(1e-3)
    opt_state = opt.init(variables)

    def loss_fn(v, x, y):
        b = x.shape[0]
        e = nnx.merge(graphdef, v["backbone"])(x.reshape(b * 31, 96, 64)).reshape(b, 31 * 128)
        h = jax.nn.relu(e @ v["head"]["w1"] + v["head"]["b1"])
        return optax.softmax_cross_entropy_with_integer_labels(h @ v["head"]["w2"] + v["head"]["b2"], y).mean()

    @jax.jit
    def step(v, s, x, y):
        loss, g = jax.value_and_grad(loss_fn)(v, x, y)
        u, s = opt.update(g, s, v)
        return optax.apply_updates(v, u), s, loss

    out = {}
    for b in ((1,) if quick else (8, 16)):
        x = jnp.asarray(np.random.default_rng(0).standard_normal((b, 31, 96, 64)), jnp.float32)
        y = jnp.zeros(b, jnp.int32)
        t = timed(lambda: jax.block_until_ready(step(variables, opt_state, x, y)), 1 if quick else 2)
        out[b] = {**t, "steps_per_second": 1 / t["median_s"], "clips_per_second": b / t["median_s"],
                  "frames_per_second": 31 * b / t["median_s"]}
    return out


def section_beam(quick: bool) -> dict:
    """Beam extraction with 1 and 2 local workers vs the single-process extract (needs the beam extra)."""
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        return {"skipped": "apache-beam not installed (pip install 'vggish-jax[beam]')"}
    from vggish_jax.pipeline.beam_extract import bench

    return bench(quick=quick)


def section_fad(quick: bool) -> dict:
    from vggish_jax.fad.bench import run

    return run(quick)


# ---- driver ----

def _run_section(name: str, quick: bool) -> dict:
    code = (f"import json,resource,sys; from vggish_jax import bench; r = bench.section_{name}({quick}); "
            f"r['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
            f"sys.stdout.write('\\n@@' + json.dumps(r, default=str))")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    result = json.loads(proc.stdout.rsplit("@@", 1)[1])
    result["section_wall_s"] = time.perf_counter() - t0
    return result


def summarize(r: dict) -> dict:
    s = {}
    mm = r.get("matmul", {})
    emb = r.get("embedding", {})
    if "jax_gflops" in mm and isinstance(emb.get("flax"), dict):
        f32 = emb["flax"]["float32"]
        best_b = max(f32, key=lambda b: f32[b]["frames_per_second"])
        s["embedding_best_batch"] = best_b
        s["embedding_best_frames_per_second"] = f32[best_b]["frames_per_second"]
        s["embedding_fraction_of_matmul"] = f32[best_b]["gflops"] / mm["jax_gflops"]
        if isinstance(emb.get("torch"), dict) and emb["torch"]:
            tb = max(emb["torch"], key=lambda b: emb["torch"][b]["frames_per_second"])
            s["torch_best_frames_per_second"] = emb["torch"][tb]["frames_per_second"]
            s["embedding_vs_torch"] = f32[best_b]["frames_per_second"] / emb["torch"][tb]["frames_per_second"]
    if "jax_best_vs_numpy" in r.get("frontend", {}):
        s["frontend_jax_vs_numpy"] = r["frontend"]["jax_best_vs_numpy"]
    if "end_to_end_vs_model_only" in r.get("end_to_end", {}):
        s["end_to_end_vs_model_only"] = r["end_to_end"]["end_to_end_vs_model_only"]
    for k in (1, 2):
        if f"beam_{k}_workers" in r.get("beam", {}):
            s[f"beam_{k}_workers_clips_per_second"] = r["beam"][f"beam_{k}_workers"]["clips_per_second"]
    if "single_process" in r.get("beam", {}):
        s["beam_single_process_clips_per_second"] = r["beam"]["single_process"]["clips_per_second"]
    if "fad_vs_embed" in r.get("fad", {}):
        s["fad_files_per_second"] = r["fad"]["fad_files_per_second"]
        s["fad_vs_embed"] = r["fad"]["fad_vs_embed"]
    return s


def render_markdown(report: dict) -> str:
    m, s = report["machine"], report["summary"]
    lines = [f"# vggish-jax benchmark ({'quick' if report['quick'] else 'full'}), {report['date']}", "",
             f"{m['cpu_model']}, {m['cores']} cores, JAX {m['versions']['jax']} on {m['jax_backend']} "
             f"({len(m['jax_devices'])} device(s)), torch {m['versions'].get('torch')}.", "",
             f"VGGish: {report['flops_per_frame'] / 1e9:.3f} GFLOP per 96x64 frame (2 x multiply-adds). "
             f"MFU on an accelerator = frames/s x that / the device's peak FLOP/s.", "", "| measure | value |", "|---|---|"]
    for k, v in s.items():
        lines.append(f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |")
    for name in SECTIONS:
        sec = report["sections"].get(name, {})
        if "error" in sec:
            lines.append(f"| {name} | failed: {sec['error']} |")
        elif "peak_rss_mb" in sec:
            lines.append(f"| {name} peak RSS (MB) | {sec['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


def add_arguments(ap) -> None:
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke run)")
    ap.add_argument("--out", default="results", help="directory for bench-<host>-<date>.json/.md")
    ap.add_argument("--sections", default=",".join(SECTIONS))


def run(args) -> int:
    sections = [s for s in args.sections.split(",") if s]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise ValueError(f"unknown sections {bad}; choose from {SECTIONS}")
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "quick": args.quick, "machine": machine_info(), "flops_per_frame": flops_per_frame(), "sections": {}}
    for name in sections:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        report["sections"][name] = _run_section(name, args.quick)
    report["summary"] = summarize(report["sections"])
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"bench-{report['machine']['host']}-{report['date'][:10]}{'-quick' if args.quick else ''}")
    with open(stem + ".json.tmp", "w") as f:
        json.dump(report, f, indent=2, default=str)
    os.replace(stem + ".json.tmp", stem + ".json")
    with open(stem + ".md", "w") as f:
        f.write(render_markdown(report))
    print(render_markdown(report))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
