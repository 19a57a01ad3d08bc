"""The device check: one process that measures what an accelerator does with VGGish, within a time budget.

    python -m benchmarks --suite device --out DIR [--dry-run] [--budget-s 420]   (from the repository root)

Sections, in order of importance (a section that would start past the budget is skipped and says so; the
JSON is rewritten after every section, so a killed run still leaves what it measured):

- matmul: the device's measured dense matmul rate per dtype (the roof the model is compared with);
- model: VGGish frames/s, TFLOP/s and MFU by batch size, float32 (default matmul precision: TF32 on recent
  NVIDIA GPUs), bfloat16, and float32 at `highest` precision (true float32);
- fused: the fused waveform -> embedding function (frontend + VGGish, `Embedder.embed_stream`) on
  in-memory 16 kHz float32 clips, against the frontend alone and the model alone: the frontend's share;
- stored_int16: the same from 16 kHz int16 clips (what the `*_waveform` stores hold: no decode) against
  model-only on the same clips' log-mels;
- mp3: mp3 files -> embeddings with one decode process per core, against the decode-only rate of the same
  processes (the host bound), with resampling in those processes (host) and on the device (they only
  decode: `pipeline.placement`; its decode-only rate too); also through `Embedder.iter_files` (resample=auto);
- finetune: one training step of VGGish + the paper's head (`train.model.GenreClassifier`, flatten head,
  Adam) in float32 and bfloat16: clips/s and MFU (a step is 3x the forward FLOPs);
- compile_cache: time to the first embedding in a fresh process, cache off vs a warm persistent cache.

The budget (330 s on the full sizes) bounds when a section may start, not how long it runs: the slowest
section measured after it (mp3, finetune) plus start-up fit in the 8 minutes of one device command, and
experiments/device_check.sh also stops the process at 470 s (what was written stays).

Peak device memory is recorded after each section. `--dry-run` runs the same code on any backend with small
sizes and a width-divided VGGish (same layers, 1/16 of the channels) in well under a minute; the test suite
runs it. Writes DIR/device-check-<device>.json and .md.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import ROOT, child_env, decode_16k, flops_per_frame, machine_info, peak_flops, timed
from vggish_jax import atomic

EXAMPLES_PER_CLIP = 31  # a 30-s clip at the default frontend


@dataclasses.dataclass(frozen=True)
class Sizes:
    batches: tuple[int, ...]          # model-only batch sizes (frames)
    matmul_n: int
    examples_per_call: int            # of the fused function (Embedder)
    clips: int                        # in-memory clips for fused / stored_int16
    clip_seconds: float
    mp3_files: int                    # distinct mp3 files encoded ...
    mp3_clips: int                    # ... and the list of paths decoded (files repeated)
    train_batches: tuple[int, ...]    # clips per fine-tuning step
    width_divisor: int
    repeats: int
    budget_s: float


FULL = Sizes(batches=(128, 512, 2048), matmul_n=8192, examples_per_call=1024, clips=512, clip_seconds=30.0,
             mp3_files=32, mp3_clips=320, train_batches=(32, 128), width_divisor=1, repeats=5, budget_s=330.0)
DRY = Sizes(batches=(2, 4), matmul_n=128, examples_per_call=4, clips=3, clip_seconds=2.0, mp3_files=2,
            mp3_clips=3, train_batches=(1,), width_divisor=16, repeats=1, budget_s=300.0)

# Dense peaks missing from common.PEAK_FLOPS: true-float32 (`highest`) vector rates, spec sheet.
PEAK_HIGHEST = {"H100": 66.9e12, "H200": 66.9e12, "A100": 19.5e12}
PRECISIONS = {"float32": ("float32", "default"), "bfloat16": ("bfloat16", "default"),
              "float32_highest": ("float32", "highest")}


def _peak(kind: str, key: str) -> float | None:
    if key == "float32_highest":
        return next((v for k, v in PEAK_HIGHEST.items() if k.lower() in kind.lower()), None)
    return (peak_flops(kind) or {}).get(key)


def _rate(count: int, t: dict, flops_each: float | None = None, peak: float | None = None) -> dict:
    out = {**t, "per_second": count / t["median_s"]}
    if flops_each is not None:
        out["tflops"] = count * flops_each / t["median_s"] / 1e12
        out["mfu"] = out["tflops"] * 1e12 / peak if peak else None
    return out


def peak_memory() -> dict:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return {k: stats[k] for k in ("peak_bytes_in_use", "bytes_limit") if k in stats} or None


def _model(sizes: Sizes, dtype: str):
    import jax.numpy as jnp
    from flax import nnx

    from vggish_jax.models.vggish.modeling import VGGish

    return VGGish(dtype=jnp.dtype(dtype), width_divisor=sizes.width_divisor, rngs=nnx.Rngs(0))


def _clips(sizes: Sizes, n: int, int16: bool = False) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(int(16000 * sizes.clip_seconds))).astype(np.float32) for _ in range(n)]
    return [np.round(w * 32767).astype(np.int16) for w in waves] if int16 else waves


# ---- sections ----

def section_matmul(sizes: Sizes, kind: str) -> dict:
    import jax
    import jax.numpy as jnp

    n = sizes.matmul_n
    out = {"n": n}
    for key, (dtype, precision) in PRECISIONS.items():
        a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
        with jax.default_matmul_precision(precision):
            f = jax.jit(lambda x: x @ x)
            t = timed(lambda: f(a).block_until_ready(), sizes.repeats)
        out[key] = _rate(1, t, 2.0 * n ** 3, _peak(kind, key))
    return out


def section_model(sizes: Sizes, kind: str, deadline: float) -> dict:
    import jax
    from flax import nnx

    fpf = flops_per_frame(sizes.width_divisor)
    out = {"flops_per_frame": fpf}
    for key, (dtype, precision) in PRECISIONS.items():
        graphdef, state = nnx.split(_model(sizes, dtype))
        out[key] = {}
        for b in sizes.batches:
            if time.monotonic() > deadline:
                out[key][b] = {"skipped": "time budget"}
                continue
            x = jax.device_put(np.random.default_rng(0).standard_normal((b, 96, 64)).astype(np.float32))
            with jax.default_matmul_precision(precision):
                fwd = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
                t0 = time.perf_counter()
                fwd(state, x).block_until_ready()
                compile_s = time.perf_counter() - t0
                t = timed(lambda: fwd(state, x).block_until_ready(), sizes.repeats)
            out[key][b] = {**_rate(b, t, fpf, _peak(kind, key)), "first_call_s": compile_s}
    return out


def section_fused(sizes: Sizes, kind: str, int16: bool = False) -> dict:
    """embed_stream on in-memory clips vs the frontend alone and the model alone, on the same batches."""
    from vggish_jax.models.vggish import frontend
    from vggish_jax.pipeline import segments
    from vggish_jax.pipeline.device import Embedder

    dev = Embedder(_model(sizes, "float32"), batch_size=sizes.examples_per_call)
    waves = _clips(sizes, sizes.clips, int16)
    n_ex = segments.bucket_for(frontend.num_examples(waves[0].shape[0]))  # a clip's examples, bucketed
    frames = sum(x.shape[0] for _, x in dev.embed_stream(enumerate(waves)))  # warm-up; frames really embedded
    t_fused = timed(lambda: list(dev.embed_stream(enumerate(waves))), sizes.repeats)
    per_call = dev.clips_per_call(n_ex)
    length = frontend.samples_for_examples(n_ex)
    batches = []
    for i in range(0, len(waves), per_call):
        b = np.zeros((per_call, length), waves[0].dtype)
        for j, w in enumerate(waves[i: i + per_call]):
            b[j, : min(length, w.shape[0])] = w[:length]
        batches.append(b)
    t_front = timed(lambda: [dev.examples(b) for b in batches], sizes.repeats)
    examples = np.concatenate([dev.examples(b)[: len(waves[i * per_call:(i + 1) * per_call])]
                               for i, b in enumerate(batches)]).reshape(-1, 96, 64)
    t_model = timed(lambda: dev.embed_examples(examples, per_call * n_ex), sizes.repeats)
    fpf = flops_per_frame(sizes.width_divisor)
    peak = _peak(kind, "float32")
    fused = _rate(frames, t_fused, fpf, peak)
    model = _rate(examples.shape[0], t_model, fpf, peak)
    return {"clips": len(waves), "clip_seconds": sizes.clip_seconds, "input_dtype": str(waves[0].dtype),
            "frames": frames, "examples_per_call": dev.batch_size, "clips_per_call": per_call,
            "fused": {**fused, "clips_per_second": len(waves) / t_fused["median_s"]},
            "frontend": _rate(len(waves), t_front), "model": {**model, "clips_per_second": len(waves) / t_model["median_s"]},
            "frontend_share_of_device_time": t_front["median_s"] / (t_front["median_s"] + t_model["median_s"]),
            "fused_vs_model_only": t_model["median_s"] / t_fused["median_s"]}


def _encode_mp3(args) -> str:
    import soundfile as sf

    path, seed, seconds = args
    t = np.arange(int(44100 * seconds)) / 44100
    rng = np.random.default_rng(seed)
    x = np.stack([0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t), 0.05 * rng.standard_normal(t.size)], 1)
    sf.write(path, x.astype(np.float32), 44100)
    return path


def section_mp3(sizes: Sizes, kind: str) -> dict:
    """mp3 -> embeddings with one decode process per core vs those processes decoding alone; resampling on
    the host (in the decode processes) and on the device (`pipeline.placement`: they decode only)."""
    import functools

    from vggish_jax.datasets import decode
    from vggish_jax.pipeline import host, resample_jax
    from vggish_jax.pipeline.device import Embedder

    cores = os.cpu_count() or 1
    reps = min(sizes.repeats, 2)  # each pass decodes every clip: seconds, not milliseconds
    dev = Embedder(_model(sizes, "float32"), batch_size=sizes.examples_per_call)
    decode_native = functools.partial(host.decode_for_stream, resample=False, stream_seconds=None)
    with tempfile.TemporaryDirectory() as d:
        pool = decode.process_pool(cores)
        try:
            files = list(pool.map(_encode_mp3, [(os.path.join(d, f"c{i}.mp3"), i, sizes.clip_seconds)
                                                for i in range(sizes.mp3_files)]))
            paths = [files[i % len(files)] for i in range(sizes.mp3_clips)]
            list(pool.map(decode_16k, files))  # workers started, imports done
            t_decode = timed(lambda: list(pool.map(decode_16k, paths)), reps)
            t_native = timed(lambda: list(pool.map(decode_native, paths)), reps)  # what the host does with
            # resampling on the device (pickling 44.1 kHz samples back instead of 16 kHz ones included)

            def e2e(on_device: bool):
                if on_device:
                    decoded = resample_jax.to_16k(zip(paths, decode.ordered_map(decode_native, paths, pool,
                                                                                2 * cores + 2)))
                else:
                    decoded = zip(paths, decode.ordered_map(decode_16k, paths, pool, 2 * cores + 2))
                return list(dev.embed_stream(decoded))
            t_e2e = timed(lambda: e2e(False), reps)
            t_e2e_dev = timed(lambda: e2e(True), reps)
        finally:
            pool.shutdown()
        if sizes.width_divisor == 1:  # Embedder builds only the full-width model from params
            from vggish_jax.models.vggish import modeling

            emb = Embedder(modeling.to_dict(_model(sizes, "float32")), batch_size=sizes.examples_per_call)
            t_lib = timed(lambda: list(emb.iter_files(paths, workers=cores, processes=True)), reps)
    n = len(paths)
    decode_rate, native_rate, e2e_rate, e2e_dev_rate = (n / t["median_s"] for t in (t_decode, t_native, t_e2e,
                                                                                      t_e2e_dev))
    lib = {"skipped": "width-divided model"}
    if sizes.width_divisor == 1:
        lib = {**t_lib, "clips_per_second": n / t_lib["median_s"], "vs_decode_only": n / t_lib["median_s"] / decode_rate,
               "resample": "device" if emb.resample_on_device else "host"}
    return {"clips": n, "distinct_files": len(files), "clip_seconds": sizes.clip_seconds,
            "source": "44.1 kHz stereo mp3", "decode_processes": cores,
            "decode_only": {**t_decode, "clips_per_second": decode_rate},
            "decode_native_only": {**t_native, "clips_per_second": native_rate},
            "end_to_end": {**t_e2e, "clips_per_second": e2e_rate},
            "end_to_end_device_resample": {**t_e2e_dev, "clips_per_second": e2e_dev_rate},
            "embedder_iter_files": lib, "end_to_end_vs_decode_only": e2e_rate / decode_rate,
            "end_to_end_device_resample_vs_decode_only": e2e_dev_rate / decode_rate,
            "end_to_end_device_resample_vs_decode_native_only": e2e_dev_rate / native_rate}


def section_finetune(sizes: Sizes, kind: str, deadline: float) -> dict:
    import jax
    import jax.numpy as jnp

    from vggish_jax.train import config, loop, step

    fpf = flops_per_frame(sizes.width_divisor)
    out = {"flops_per_clip_step": 3 * EXAMPLES_PER_CLIP * fpf, "head": "flatten (31 x 128 -> 256 -> 8)",
           "optimizer": "adam"}
    for dtype in ("float32", "bfloat16"):
        cfg = config.Config(dtype=dtype, init="random", final_relu=True, width_divisor=sizes.width_divisor)
        graphdef, params = loop.init_params(cfg, 8, None)
        opt = step.make_optimizer(cfg, 100, params)
        train_step, _ = step.make_steps(graphdef, cfg, opt, 8)
        train_step = jax.jit(train_step, donate_argnums=0)
        out[dtype] = {}
        for b in sizes.train_batches:
            if time.monotonic() > deadline:
                out[dtype][b] = {"skipped": "time budget"}
                continue
            fresh = jax.tree.map(jnp.copy, params)  # the step donates its state: each batch size starts anew
            state = [(fresh, opt.init(fresh))]
            batch = {"mel": jnp.asarray(np.random.default_rng(0).standard_normal((b, EXAMPLES_PER_CLIP, 96, 64)),
                                        jnp.float32), "label": jnp.arange(b, dtype=jnp.int32) % 8}
            key = jax.random.key(0)

            def one():
                state[0], metrics = train_step(state[0], batch, key)
                jax.block_until_ready(metrics)
            t = timed(one, sizes.repeats)
            r = _rate(b, t, 3 * EXAMPLES_PER_CLIP * fpf, _peak(kind, dtype))
            out[dtype][b] = {**r, "clips_per_second": r.pop("per_second"),
                             "loss_finite": bool(np.isfinite(float(train_step(state[0], batch, key)[1]["loss"])))}
    return out


CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from benchmarks import device
from vggish_jax import compilation_cache
compilation_cache.enable()
from vggish_jax.pipeline.device import Embedder
sizes = device.DRY if sys.argv[1] == "dry" else device.FULL
dev = Embedder(device._model(sizes, "float32"), batch_size=sizes.examples_per_call)
t1 = time.perf_counter()
list(dev.embed_stream(enumerate(device._clips(sizes, 1))))
print("@@" + json.dumps({"setup_s": t1 - t0, "first_embedding_s": time.perf_counter() - t1}))
"""


def section_compile_cache(sizes: Sizes, kind: str, dry_run: bool) -> dict:
    """A fresh process's first embedding: no persistent cache, then twice with one (cold fills it, warm reads)."""
    def child(cache: str) -> dict:
        # the parent holds most of the device memory (JAX preallocates): the child takes only what it uses
        env = child_env(VGGISH_JAX_CACHE_DIR=cache, XLA_PYTHON_CLIENT_PREALLOCATE="false")
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        proc = subprocess.run([sys.executable, "-c", CHILD, "dry" if dry_run else "full"], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        return json.loads(proc.stdout.rsplit("@@", 1)[1])

    with tempfile.TemporaryDirectory() as d:
        out = {"off": child("off"), "cold": child(d), "warm": child(d)}
    out["first_embedding_saved_s"] = out["off"]["first_embedding_s"] - out["warm"]["first_embedding_s"]
    return out


# ---- driver ----

def device_name() -> str:
    import jax

    d = jax.devices()[0]
    return re.sub(r"[^A-Za-z0-9.-]+", "-", f"{d.platform}-{d.device_kind}").strip("-").lower()


SECTIONS = ("matmul", "model", "fused", "stored_int16", "mp3", "finetune", "compile_cache")


def run_check(out_dir: str, dry_run: bool, budget_s: float | None = None, only: tuple[str, ...] | None = None,
              log=print) -> dict:
    sizes = DRY if dry_run else FULL
    budget = sizes.budget_s if budget_s is None else budget_s
    start = time.monotonic()
    deadline = start + budget
    machine = machine_info()
    kind = machine["device_kind"]
    name = device_name() + ("-dry-run" if dry_run else "")
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dry_run": dry_run, "device": kind,
              "machine": machine, "sizes": dataclasses.asdict(sizes), "budget_s": budget,
              "flops_per_frame": flops_per_frame(sizes.width_divisor), "sections": {}}
    stem = os.path.join(out_dir, f"device-check-{name}")
    sections = [("matmul", lambda: section_matmul(sizes, kind)),
                ("model", lambda: section_model(sizes, kind, deadline)),
                ("fused", lambda: section_fused(sizes, kind)),
                ("stored_int16", lambda: section_fused(sizes, kind, int16=True)),
                ("mp3", lambda: section_mp3(sizes, kind)),
                ("finetune", lambda: section_finetune(sizes, kind, deadline)),
                ("compile_cache", lambda: section_compile_cache(sizes, kind, dry_run))]
    os.makedirs(out_dir, exist_ok=True)
    for name_, fn in sections:
        if only is not None and name_ not in only:
            continue
        if time.monotonic() > deadline:
            report["sections"][name_] = {"skipped": "time budget"}
            continue
        log(f"device check: {name_} ({time.monotonic() - start:.0f} s in)")
        t0 = time.monotonic()
        try:
            r = fn()
        except Exception as e:  # one broken section must not lose the others' numbers
            r = {"error": f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"}
        r["wall_s"] = time.monotonic() - t0
        r["peak_device_memory"] = peak_memory()
        report["sections"][name_] = r
        report["summary"] = summarize(report)
        atomic.write_json(stem + ".json", report, default=str)
        atomic.write_text(stem + ".md", render_markdown(report))
    report["wall_s"] = time.monotonic() - start
    atomic.write_json(stem + ".json", report, default=str)
    atomic.write_text(stem + ".md", render_markdown(report))
    report["paths"] = [stem + ".json", stem + ".md"]
    return report


def _best(by_batch: dict) -> tuple[str, dict] | None:
    ok = {b: v for b, v in by_batch.items() if isinstance(v, dict) and "per_second" in v}
    return max(ok.items(), key=lambda kv: kv[1]["per_second"]) if ok else None


def summarize(report: dict) -> dict:
    s, sec = {}, report["sections"]
    model = sec.get("model", {})
    for key in PRECISIONS:
        best = _best(model.get(key, {}))
        if best:
            s[f"model_{key}_best_frames_per_second"] = best[1]["per_second"]
            s[f"model_{key}_best_batch"] = best[0]
            s[f"model_{key}_best_mfu"] = best[1]["mfu"]
            mm = sec.get("matmul", {}).get(key, {})
            if "tflops" in mm:
                s[f"model_{key}_vs_measured_matmul"] = best[1]["tflops"] / mm["tflops"]
    for k in ("fused", "stored_int16"):
        if "fused" in sec.get(k, {}):
            s[f"{k}_frames_per_second"] = sec[k]["fused"]["per_second"]
            s[f"{k}_vs_model_only"] = sec[k]["fused_vs_model_only"]
            s[f"{k}_frontend_share"] = sec[k]["frontend_share_of_device_time"]
    if "end_to_end" in sec.get("mp3", {}):
        s["mp3_decode_only_clips_per_second"] = sec["mp3"]["decode_only"]["clips_per_second"]
        s["mp3_end_to_end_clips_per_second"] = sec["mp3"]["end_to_end"]["clips_per_second"]
        s["mp3_end_to_end_vs_decode_only"] = sec["mp3"]["end_to_end_vs_decode_only"]
        s["mp3_decode_native_only_clips_per_second"] = sec["mp3"]["decode_native_only"]["clips_per_second"]
        s["mp3_end_to_end_device_resample_clips_per_second"] = sec["mp3"]["end_to_end_device_resample"]["clips_per_second"]
        s["mp3_end_to_end_device_resample_vs_decode_only"] = sec["mp3"]["end_to_end_device_resample_vs_decode_only"]
        s["mp3_embedder_vs_decode_only"] = sec["mp3"]["embedder_iter_files"].get("vs_decode_only")
    for dtype in ("float32", "bfloat16"):
        best = _best({b: {**v, "per_second": v["clips_per_second"]} for b, v in sec.get("finetune", {}).get(dtype, {}).items()
                      if isinstance(v, dict) and "clips_per_second" in v})
        if best:
            s[f"finetune_{dtype}_clips_per_second"] = best[1]["clips_per_second"]
            s[f"finetune_{dtype}_mfu"] = best[1]["mfu"]
    if "first_embedding_saved_s" in sec.get("compile_cache", {}):
        s["compile_cache_first_embedding_saved_s"] = sec["compile_cache"]["first_embedding_saved_s"]
    peaks = [v["peak_device_memory"]["peak_bytes_in_use"] for v in sec.values()
             if isinstance(v.get("peak_device_memory"), dict) and "peak_bytes_in_use" in v["peak_device_memory"]]
    s["peak_device_memory_gib"] = max(peaks) / 2 ** 30 if peaks else None
    return s


def _f(v) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def render_markdown(report: dict) -> str:
    m, sec = report["machine"], report["sections"]
    lines = [f"# vggish-jax device check{' (dry run: small sizes, width/16 model)' if report['dry_run'] else ''}: "
             f"{report['device']}, {report['date']}", "",
             f"{m['cpu_model']}, {m['cores']} cores, JAX {m['versions']['jax']} on {m['jax_backend']} "
             f"({len(m['jax_devices'])} device(s)). Load average {m.get('load_average')}. VGGish "
             f"{report['flops_per_frame'] / 1e9:.4g} GFLOP/frame; MFU against the spec-sheet dense peak.", ""]
    model = sec.get("model", {})
    if any(k in model for k in PRECISIONS):
        lines += ["## VGGish forward, frames/s (MFU)", "", "| batch | " + " | ".join(PRECISIONS) + " |",
                  "|---|" + "---|" * len(PRECISIONS)]
        for b in report["sizes"]["batches"]:
            cells = []
            for k in PRECISIONS:
                v = model.get(k, {}).get(b) or model.get(k, {}).get(str(b)) or {}
                cells.append(f"{v['per_second']:.0f} ({_f(v.get('mfu'))})" if "per_second" in v else
                             v.get("skipped", "-"))
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Summary", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {_f(v)} |" for k, v in report.get("summary", {}).items()]
    for k, v in sec.items():
        if "error" in v or "skipped" in v:
            lines.append(f"| {k} | {v.get('error') or 'skipped: ' + v['skipped']} |")
        else:
            lines.append(f"| {k} wall (s) | {v['wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    """The device check from `python -m benchmarks --suite device`'s arguments; prints the table."""
    only = tuple(x for x in args.sections.split(",") if x)
    bad = [x for x in only if x not in SECTIONS]
    if bad:
        raise ValueError(f"unknown device-check sections {bad}; choose from {','.join(SECTIONS)}")
    report = run_check(args.out, args.dry_run, args.budget_s, only, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(render_markdown(report))
    print("wrote " + " and ".join(report["paths"]))
    return 0
