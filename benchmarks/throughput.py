"""Throughput benchmarks: matmul peak, frontend, decode + resample, embedding (vs a PyTorch VGGish), mp3 ->
embeddings end to end against its references, 1 vs N devices, training, FAD, Beam, and the peer (torchvggish
0.2's own pipeline vs `vggish-jax embed`, whole processes). Each section runs in its own process so its peak
RSS is its own. The accelerator check is benchmarks/device.py (`python -m benchmarks --suite device`).

    python -m benchmarks [--quick] [--out results/] [--name MACHINE] [--sections ...]   (from the repo root)

End to end (mp3 -> embeddings through the device path) is measured against two references in the same run:
model-only (VGGish on ready log-mels) and the sum-of-parts bound, 1 / (decode + resample, frontend and model
per-clip times, each timed alone on all cores): on a CPU every part competes for the same cores, so no
pipeline can beat that bound; e2e / bound shows stalls and overhead. On an accelerator host decoding and the
device overlap instead, so the slower of the two sets the pace (pipelined bound), and MFU is reported.

Writes results/bench-<name>-<date>.json and .md with machine info (including the load average, since a busy
machine slows everything). Timings are medians of repeats after a warm-up (compile) run, with min and max.
"""
from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import (ROOT, child_env, decode_16k, flops_per_frame, load_average, machine_info, peak_flops,
                               timed)

SECTIONS = ("matmul", "frontend", "decode", "embedding", "end_to_end", "devices", "training", "fad", "beam", "peer")
# A full-size training step needs ~12 GB: only on request (--sections ...,training).
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "training")
CLIP_SECONDS = 30.0


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


def _decode_native(path: str) -> tuple[np.ndarray, int]:
    from vggish_jax import audio

    return audio.load(path)


def section_decode(quick: bool) -> dict:
    """Host work of the device path: mp3 -> 16 kHz mono, and where resampling is cheaper."""
    from vggish_jax import audio
    from vggish_jax.datasets import decode
    from vggish_jax.pipeline import host, resample_jax

    n = 2 if quick else 8
    reps = 1 if quick else 2
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        paths = _mp3s(d, n)
        t = timed(lambda: [decode_16k(p) for p in paths], reps)
        out = {"clips": n, "clip_seconds": CLIP_SECONDS, "source": "44.1 kHz stereo mp3",
               "one_worker_clips_per_second": n / t["median_s"], "one_worker": t}
        pool = decode.process_pool(cores)
        try:
            mods = pool.submit(host.imported_modules).result()
            out["worker_imports_jax"] = "jax" in mods
            out["worker_modules"] = len(mods)
            t = timed(lambda: list(pool.map(decode_16k, paths)), reps)
        finally:
            pool.shutdown()
        out.update(workers=cores, pool=t, pool_clips_per_second=n / t["median_s"])
        # Where to resample: per clip, the host polyphase matmul (one core; a pool of `cores` divides it)
        # against the same filter as one strided convolution on the device (all cores).
        native = [_decode_native(p) for p in paths]
        t_read = timed(lambda: [_decode_native(p) for p in paths], reps)
        sr = native[0][1]
        length = min(x.shape[0] for x, _ in native)
        batch = np.stack([x[:length] for x, _ in native])
        t_host = timed(lambda: [audio.resample(x, sr) for x in batch], reps)
        t_dev = timed(lambda: resample_jax.resample(batch, sr).block_until_ready(), reps)
        host_per_clip = t_host["median_s"] / n
        out["resample"] = {
            "read_downmix_s_per_clip": t_read["median_s"] / n, "host_s_per_clip_one_core": host_per_clip,
            "host_s_per_clip_all_cores_ideal": host_per_clip / cores,
            "device_s_per_clip": t_dev["median_s"] / n, "host": t_host, "device": t_dev,
            "device_faster": t_dev["median_s"] / n < host_per_clip / cores}
    return out


EMBED_BATCHES = (1, 8, 16, 31, 32, 48, 62, 64, 93, 124, 128, 256)


def section_embedding(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from vggish_jax.models.vggish import modeling

    p = modeling.random(0)
    fpf = flops_per_frame()
    batches = (1, 32) if quick else EMBED_BATCHES
    # bfloat16 matmuls/convs are emulated on most CPUs (slow); fewer sizes keep the full run in minutes.
    bf16_batches = (1, 32) if quick else (1, 32, 128)
    out = {"flops_per_frame": fpf, "flax": {"float32": {}, "bfloat16": {}}, "torch": {}}
    for dtype in ("float32", "bfloat16"):
        graphdef, state = nnx.split(modeling.build(p, dtype=jnp.dtype(dtype)))
        fwd = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
        for b in (batches if dtype == "float32" else bf16_batches):
            x = jax.device_put(np.random.default_rng(0).standard_normal((b, 96, 64)).astype(np.float32))
            t = timed(lambda: fwd(state, x).block_until_ready(), 2 if quick else 3)
            out["flax"][dtype][b] = {**t, "frames_per_second": b / t["median_s"],
                                     "gflops": b * fpf / t["median_s"] / 1e9}
    try:
        import torch
        from benchmarks.torch_reference import TorchVGGish

        model = TorchVGGish().eval()
        with torch.inference_mode():
            for b in ((1, 32) if quick else (1, 8, 32, 64, 128)):
                x = torch.randn(b, 1, 96, 64)
                t = timed(lambda: model(x), 2 if quick else 3)
                out["torch"][b] = {**t, "frames_per_second": b / t["median_s"], "gflops": b * fpf / t["median_s"] / 1e9}
        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        out["torch"] = "not installed (pip install 'vggish-jax[bench]')"
    return out


def _device_rate(n: int, reps: int, examples_per_call: int | None = None) -> dict:
    """The fused device function (frontend + VGGish) on n in-memory 30-s clips: clips/s and frames/s."""
    from vggish_jax.models.vggish import modeling
    from vggish_jax.pipeline.device import Embedder

    kw = {} if examples_per_call is None else {"batch_size": examples_per_call}
    dev = Embedder(modeling.build(modeling.random(0)), **kw)
    waves = [_clip(seed=i) for i in range(n)]
    t = timed(lambda: list(dev.embed_stream(enumerate(waves))), reps)
    frames = n * 31
    return {"examples_per_call": dev.batch_size, "clips_per_call": dev.clips_per_call(31),
            "devices": dev.num_devices, **t, "clips_per_second": n / t["median_s"],
            "frames_per_second": frames / t["median_s"]}


def section_end_to_end(quick: bool) -> dict:
    """mp3 files -> embeddings, against model-only and the sum-of-parts bound, all measured here."""
    from vggish_jax.datasets import decode
    from vggish_jax.models.vggish import modeling
    from vggish_jax.models.vggish import frontend
    from vggish_jax.pipeline import host
    from vggish_jax.pipeline.device import Embedder

    n = 4 if quick else 8
    reps = 1 if quick else 2
    cores = os.cpu_count() or 1
    workers = decode.default_workers()
    p = modeling.random(0)
    dev = Embedder(modeling.build(p))
    out = {"clips": n, "clip_seconds": CLIP_SECONDS, "cores": cores, "decode_workers": workers,
           "examples_per_call": dev.batch_size, "devices": dev.num_devices}
    with tempfile.TemporaryDirectory() as d:
        paths = _mp3s(d, n)
        # 1. decode + resample alone, on every core (a pool of `cores` jax-free worker processes)
        pool = decode.process_pool(cores)
        try:
            out["worker_imports_jax"] = "jax" in pool.submit(host.imported_modules).result()
            t_decode = timed(lambda: list(pool.map(decode_16k, paths)), reps)
        finally:
            pool.shutdown()
        waves = [decode_16k(p) for p in paths]
        # 2. frontend alone, in the batches the device path uses (30-s clips fill the 31-example bucket)
        clips_per_call = dev.clips_per_call(31)
        batches = _clip_batches(waves, clips_per_call, frontend.samples_for_examples(31))
        t_frontend = timed(lambda: [dev.examples(b) for b in batches], reps)
        examples = np.concatenate([dev.examples(b) for b in batches])[: n * 31].reshape(-1, 96, 64)
        # 3. model alone on those log-mels, same batch
        t_model = timed(lambda: dev.embed_examples(examples, clips_per_call * 31), reps)
        # the fused device function (frontend + model in one jit) on the decoded clips
        t_device = timed(lambda: list(dev.embed_stream(enumerate(waves))), reps)

        # end to end: files -> decode workers (processes, as extract --from-audio) -> device
        def e2e_processes():
            decoded = decode.ordered_map(decode_16k, paths, pool, 2 * workers + 2)
            return list(dev.embed_stream(zip(paths, decoded)))

        pool = decode.process_pool(workers)
        try:
            pool.submit(host.imported_modules).result()  # workers started and warm
            t_e2e = timed(e2e_processes, reps)
        finally:
            pool.shutdown()
        # end to end through the library (Embedder.iter_files: decode threads, as `vggish-jax embed`)
        emb = Embedder(p)
        t_lib = timed(lambda: list(emb.iter_files(paths, workers=workers)), reps)

    per = {k: t["median_s"] / n for k, t in (("decode_resample", t_decode), ("frontend", t_frontend),
                                              ("model", t_model), ("device", t_device), ("e2e", t_e2e),
                                              ("e2e_embedder", t_lib))}
    out["timings"] = {"decode_resample": t_decode, "frontend": t_frontend, "model": t_model, "device": t_device,
                      "end_to_end_processes": t_e2e, "end_to_end_embedder": t_lib}
    out.update(_end_to_end_rates(per))
    if not quick:  # the batch-size cliff on the fused function: 1, 2 and 4 clips (31 examples each) per call
        out["examples_per_call_sweep"] = {e: _device_rate(n, 1, e) for e in (31, 62, 124)}
    return out


def _clip_batches(waves: list[np.ndarray], clips_per_call: int, length: int) -> list[np.ndarray]:
    """The clips zero-padded or cut to `length` samples, in batches of `clips_per_call` (as the device path)."""
    batches = []
    for i in range(0, len(waves), clips_per_call):
        b = np.zeros((clips_per_call, length), np.float32)
        for j, w in enumerate(waves[i: i + clips_per_call]):
            b[j, : min(length, w.shape[0])] = w[:length]
        batches.append(b)
    return batches


def _end_to_end_rates(per: dict) -> dict:
    """Clips/s and ratios from the seconds per clip of each part, end to end and the fused device function."""
    bound = 1.0 / (per["decode_resample"] + per["frontend"] + per["model"])
    return {
        "seconds_per_clip": per,
        "model_only_clips_per_second": 1.0 / per["model"],
        "device_clips_per_second": 1.0 / per["device"],
        "decode_clips_per_second_all_cores": 1.0 / per["decode_resample"],
        "sum_of_parts_bound_clips_per_second": bound,
        "clips_per_second": 1.0 / per["e2e"], "embedder_clips_per_second": 1.0 / per["e2e_embedder"],
        "end_to_end_vs_bound": (1.0 / per["e2e"]) / bound,
        "embedder_vs_bound": (1.0 / per["e2e_embedder"]) / bound,
        "end_to_end_vs_model_only": per["model"] / per["e2e"],
        "frontend_share_of_device_time": per["frontend"] / (per["frontend"] + per["model"]),
        # Host and device on different hardware (an accelerator): the slower of the two sets the pace.
        "pipelined_bound_clips_per_second": min(1.0 / per["decode_resample"], 1.0 / per["device"]),
    }


def section_devices(quick: bool) -> dict:
    """The fused device function with 1 device and with one fake CPU device per core (or the real ones)."""
    import jax

    n = 4 if quick else 8
    reps = 1 if quick else 2
    out = {}
    counts = (1, os.cpu_count() or 1) if jax.default_backend() == "cpu" else (len(jax.devices()),)
    for count in counts:
        env = child_env(XLA_FLAGS=f"--xla_force_host_platform_device_count={count}")
        code = (f"import json,sys; from benchmarks import throughput; "
                f"sys.stdout.write('\\n@@' + json.dumps(throughput._device_rate({n}, {reps})))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            out[count] = {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
        else:
            out[count] = json.loads(proc.stdout.rsplit("@@", 1)[1])
    return out


def section_training(quick: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from vggish_jax.models.vggish import modeling

    model = modeling.build(modeling.random(0))
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
    from benchmarks.beam import bench

    return bench(quick=quick)


# torchvggish 0.2's own pipeline as a user runs it: its wavfile_to_examples (soundfile read, resampy, its
# NumPy log-mel) and its VGG on every file, the same random weights; a process of its own, like the CLI's.
PEER_CHILD = r"""
import sys, numpy as np, torch
from torchvggish import torchvggish as tvm, vggish_input
model = tvm.VGG(tvm.make_layers(), postprocess=False).eval()
model.load_state_dict(torch.load(sys.argv[1]))
out = {}
with torch.inference_mode():
    for path in sys.argv[3:]:
        out[path] = model(vggish_input.wavfile_to_examples(path)).numpy()
np.savez(sys.argv[2], **{str(i): out[p] for i, p in enumerate(sys.argv[3:])})
"""


def _torch_state(p: dict) -> dict:
    """Our params as torchvggish's VGG state_dict (conv kernels HWIO -> OIHW, dense [in, out] -> [out, in])."""
    import torch

    convs = ("conv1", "conv2", "conv3_1", "conv3_2", "conv4_1", "conv4_2")
    conv_idx = (0, 3, 6, 8, 11, 13)  # positions of the Conv2d modules in torchvggish's make_layers()
    state = {}
    for name, i in zip(convs, conv_idx):
        state[f"features.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(p[name]["kernel"].transpose(3, 2, 0, 1)))
        state[f"features.{i}.bias"] = torch.tensor(np.asarray(p[name]["bias"]))
    for name, i in zip(("fc1_1", "fc1_2", "fc2"), (0, 2, 4)):
        state[f"embeddings.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(p[name]["kernel"].T))
        state[f"embeddings.{i}.bias"] = torch.tensor(np.asarray(p[name]["bias"]))
    return state


def section_peer(quick: bool) -> dict:
    """Whole processes on the same generated 30-s 44.1 kHz stereo wav files: torchvggish's pipeline vs
    `vggish-jax embed`, same random weights, alternating runs; also how close their embeddings are."""
    try:
        import torch
        import torchvggish  # noqa: F401
    except ImportError:
        return {"skipped": "torchvggish not installed (pip install 'vggish-jax[test]')"}
    import soundfile as sf

    from vggish_jax.models.vggish import modeling, params

    n, runs = (3, 1) if quick else (16, 2)
    p = modeling.random(0)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(n):
            t = np.arange(int(44100 * CLIP_SECONDS)) / 44100
            rng = np.random.default_rng(i)
            x = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
            paths.append(os.path.join(d, f"clip{i:02d}.wav"))
            sf.write(paths[-1], np.stack([x, 0.8 * x], 1).astype(np.float32), 44100, subtype="PCM_16")
        weights = os.path.join(d, "w")
        params.save(weights, p, metadata={"source": "random", "seed": 0})
        torch.save(_torch_state(p), os.path.join(d, "w.pth"))
        def cmd(tool: str, run: int) -> list[str]:
            if tool == "torchvggish":
                return [sys.executable, "-c", PEER_CHILD, os.path.join(d, "w.pth"), os.path.join(d, "t.npz"), *paths]
            return [sys.executable, "-m", "vggish_jax.cli", "embed", "--weights", weights, "--final-relu", "yes",
                    "--out", os.path.join(d, f"j{run}"), *paths]  # a new output folder each run: embed resumes

        env = child_env(VGGISH_JAX_CACHE_DIR=os.path.join(d, "cache"))
        times = {"torchvggish": [], "vggish_jax": []}
        for r in range(runs + 1):  # run 0 warms the OS file cache and the compilation cache; not timed
            for tool in times:
                t0 = time.perf_counter()
                subprocess.run(cmd(tool, r), check=True, capture_output=True, env=env, cwd=ROOT)
                if r:
                    times[tool].append(time.perf_counter() - t0)
        ours = np.load(os.path.join(d, "j0", "embeddings.npz"))
        theirs = np.load(os.path.join(d, "t.npz"))
        rel = max(float(np.linalg.norm(ours[os.path.abspath(p_)] - theirs[str(i)]) / np.linalg.norm(theirs[str(i)]))
                  for i, p_ in enumerate(paths))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"files": n, "clip_seconds": CLIP_SECONDS, "source": "44.1 kHz stereo 16-bit wav", "runs": runs,
            "seconds": times, "median_s": med, "vggish_jax_vs_torchvggish": med["torchvggish"] / med["vggish_jax"],
            "max_relative_embedding_difference": rel, "load_average": load_average(),
            "compilation_cache": "warm (run 0 filled it)"}


def section_fad(quick: bool) -> dict:
    from benchmarks.fad import run

    return run(quick)


# ---- driver ----

def _run_section(name: str, quick: bool) -> dict:
    code = (f"import json,sys; from benchmarks import common, throughput; "
            f"r = throughput.section_{name}({quick}); r['peak_rss_mb'] = common.peak_rss_mb(); "
            f"sys.stdout.write('\\n@@' + json.dumps(r, default=str))")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=child_env())
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    result = json.loads(proc.stdout.rsplit("@@", 1)[1])
    result["section_wall_s"] = time.perf_counter() - t0
    return result


def summarize(r: dict, machine: dict | None = None) -> dict:
    s = {}
    mm = r.get("matmul", {})
    emb = r.get("embedding", {})
    if isinstance(emb.get("flax"), dict):
        f32 = emb["flax"]["float32"]
        best_b = max(f32, key=lambda b: f32[b]["frames_per_second"])
        s["embedding_best_batch"] = best_b
        s["embedding_best_frames_per_second"] = f32[best_b]["frames_per_second"]
        s["embedding_frames_per_second_by_batch"] = {b: round(v["frames_per_second"], 1) for b, v in f32.items()}
        if "jax_gflops" in mm:
            s["embedding_fraction_of_matmul"] = f32[best_b]["gflops"] / mm["jax_gflops"]
        if isinstance(emb.get("torch"), dict) and emb["torch"]:
            tb = max(emb["torch"], key=lambda b: emb["torch"][b]["frames_per_second"])
            s["torch_best_frames_per_second"] = emb["torch"][tb]["frames_per_second"]
            s["embedding_vs_torch"] = f32[best_b]["frames_per_second"] / emb["torch"][tb]["frames_per_second"]
    if "jax_best_vs_numpy" in r.get("frontend", {}):
        s["frontend_jax_vs_numpy"] = r["frontend"]["jax_best_vs_numpy"]
    dec = r.get("decode", {})
    if "resample" in dec:
        s["worker_imports_jax"] = dec["worker_imports_jax"]
        s["resample_host_ms_per_clip_one_core"] = 1e3 * dec["resample"]["host_s_per_clip_one_core"]
        s["resample_device_ms_per_clip"] = 1e3 * dec["resample"]["device_s_per_clip"]
        s["resample_device_faster"] = dec["resample"]["device_faster"]
    e2e = r.get("end_to_end", {})
    if "end_to_end_vs_bound" in e2e:
        for k in ("clips_per_second", "embedder_clips_per_second", "sum_of_parts_bound_clips_per_second",
                  "model_only_clips_per_second", "device_clips_per_second", "decode_clips_per_second_all_cores",
                  "end_to_end_vs_bound", "embedder_vs_bound", "end_to_end_vs_model_only",
                  "frontend_share_of_device_time", "worker_imports_jax"):
            s[("e2e_" + k) if not k.startswith(("end_to_end", "e2e")) else k] = e2e[k]
        sweep = e2e.get("examples_per_call_sweep")
        if sweep:
            s["device_frames_per_second_by_examples_per_call"] = {
                e: round(v["frames_per_second"], 1) for e, v in sweep.items()}
        kind = (machine or {}).get("device_kind", "")
        peak = peak_flops(kind)
        if (machine or {}).get("jax_backend") not in (None, "cpu"):
            frames = 31 * e2e["device_clips_per_second"]
            s["device_frames_per_second"] = frames
            if peak:
                s["mfu_float32"] = frames * flops_per_frame() / peak.get("float32", peak["bfloat16"])
            if "jax_gflops" in mm:
                s["fraction_of_measured_matmul"] = frames * flops_per_frame() / 1e9 / mm["jax_gflops"]
            s["clips_per_second_bound_by_host_decode"] = e2e["decode_clips_per_second_all_cores"]
    dev = r.get("devices", {})
    rates = {k: v["clips_per_second"] for k, v in dev.items() if isinstance(v, dict) and "clips_per_second" in v}
    if rates:
        s["device_clips_per_second_by_device_count"] = rates
    for k in (1, 2):
        if f"beam_{k}_workers" in r.get("beam", {}):
            s[f"beam_{k}_workers_clips_per_second"] = r["beam"][f"beam_{k}_workers"]["clips_per_second"]
    if "single_process" in r.get("beam", {}):
        s["beam_single_process_clips_per_second"] = r["beam"]["single_process"]["clips_per_second"]
    if "vggish_jax_vs_torchvggish" in r.get("peer", {}):
        s["vggish_jax_vs_torchvggish_pipeline"] = r["peer"]["vggish_jax_vs_torchvggish"]
        s["peer_max_relative_embedding_difference"] = r["peer"]["max_relative_embedding_difference"]
    if "fad_vs_embed" in r.get("fad", {}):
        s["fad_files_per_second"] = r["fad"]["fad_files_per_second"]
        s["fad_vs_embed"] = r["fad"]["fad_vs_embed"]
    return s


def render_markdown(report: dict) -> str:
    m, s = report["machine"], report["summary"]
    lines = [f"# vggish-jax benchmark ({'quick' if report['quick'] else 'full'}): {report.get('name', '')}, "
             f"{report['date']}", "",
             f"{m['cpu_model']}, {m['cores']} cores, JAX {m['versions']['jax']} on {m['jax_backend']} "
             f"({len(m['jax_devices'])} device(s): {m.get('device_kind', '')}), torch {m['versions'].get('torch')}. "
             f"Load average at start {m.get('load_average')}, at end {report.get('load_average_end')}.", "",
             f"VGGish: {report['flops_per_frame'] / 1e9:.3f} GFLOP per 96x64 frame (2 x multiply-adds). "
             f"MFU on an accelerator = frames/s x that / the device's peak FLOP/s.", ""]
    e2e = report["sections"].get("end_to_end", {})
    if "end_to_end_vs_bound" in e2e:
        per = e2e["seconds_per_clip"]
        lines += ["## mp3 -> embeddings (30-s 44.1 kHz stereo clips)", "",
                  "| part, timed alone on all cores | ms per clip | clips/s |", "|---|---|---|"]
        for k in ("decode_resample", "frontend", "model", "device", "e2e", "e2e_embedder"):
            lines.append(f"| {k} | {1e3 * per[k]:.1f} | {1 / per[k]:.2f} |")
        lines += ["", f"Sum-of-parts bound 1 / (decode_resample + frontend + model) = "
                      f"{e2e['sum_of_parts_bound_clips_per_second']:.2f} clips/s; end to end (decode processes) "
                      f"{e2e['clips_per_second']:.2f} clips/s = **{e2e['end_to_end_vs_bound']:.3f}** of it "
                      f"(Embedder.iter_files: {e2e['embedder_vs_bound']:.3f}); model only "
                      f"{e2e['model_only_clips_per_second']:.2f} clips/s. Frontend share of device time "
                      f"{e2e['frontend_share_of_device_time']:.3f}. Decode workers import jax: "
                      f"{e2e['worker_imports_jax']}.", ""]
    lines += ["## Summary", "", "| measure | value |", "|---|---|"]
    for k, v in s.items():
        lines.append(f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |")
    for name in SECTIONS:
        sec = report["sections"].get(name, {})
        if "error" in sec:
            lines.append(f"| {name} | failed: {sec['error']} |")
        elif "peak_rss_mb" in sec:
            lines.append(f"| {name} peak RSS (MB), wall (s) | {sec['peak_rss_mb']:.0f}, {sec['section_wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    """The sections named by args.sections (default: all but training), each in its own process; writes
    args.out/bench-<name>-<date>[-quick].json and .md."""
    from vggish_jax import atomic

    sections = [s for s in (args.sections or ",".join(DEFAULT_SECTIONS)).split(",") if s]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise ValueError(f"unknown sections {bad}; choose from {SECTIONS}")
    machine = machine_info()
    name = args.name or machine["host"]
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "name": name,
              "quick": args.quick, "machine": machine, "flops_per_frame": flops_per_frame(), "sections": {}}
    for section in sections:
        print(f"bench: {section} ...", file=sys.stderr, flush=True)
        report["sections"][section] = _run_section(section, args.quick)
    report["load_average_end"] = load_average()
    report["summary"] = summarize(report["sections"], machine)
    stem = os.path.join(args.out, f"bench-{name}-{report['date'][:10]}{'-quick' if args.quick else ''}")
    atomic.write_json(stem + ".json", report, default=str)
    atomic.write_text(stem + ".md", render_markdown(report))
    print(render_markdown(report))
    print(f"wrote {stem}.json and {stem}.md")
    return 0
