"""FAD throughput: files/s of `fad` vs embedding the same files (`Embedder.embed_files`, the path `fad` uses).

The ratio shows what the statistics, the distance, per-file scores and FAD-inf add on top of embedding.
The `fad` section of `python -m benchmarks`; random weights (the speed does not depend on them).
"""
from __future__ import annotations

import os
import tempfile
import numpy as np

from benchmarks.common import timed


def _clips(folder: str, n: int, seconds: float, seed: int) -> None:
    import soundfile as sf

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(44100 * seconds)) / 44100
    for i in range(n):
        x = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(os.path.join(folder, f"clip{i:03d}.mp3"), np.stack([x, x], 1).astype(np.float32), 44100)


def run(quick: bool = False) -> dict:
    """Files/s of embedding, `fad` and `fad` with FAD-inf on the same generated clips, and their ratios."""
    from vggish_jax.models.vggish import modeling
    from vggish_jax.pipeline.embed import Embedder
    from vggish_jax.fad import compute, sources

    n, seconds, repeats = (4, 10.0, 1) if quick else (16, 30.0, 2)
    workers = os.cpu_count() or 1
    emb = Embedder(modeling.random(0), batch_size=64)
    with tempfile.TemporaryDirectory() as d:
        ref, gen = os.path.join(d, "ref"), os.path.join(d, "gen")
        _clips(ref, n // 2, seconds, 0)
        _clips(gen, n - n // 2, seconds, 1)
        paths = sources.audio_inputs(ref)[0] + sources.audio_inputs(gen)[0]

        def fad(**kw):
            return compute.evaluate(ref, gen, weights=emb, workers=workers, progress=False, log=lambda m: None, **kw)

        t_embed = timed(lambda: emb.embed_files(paths, workers=workers), repeats)
        t_fad = timed(lambda: fad(fad_inf=False), repeats)
        t_inf = timed(lambda: fad(fad_inf=True), repeats)
    out = {"files": n, "clip_seconds": seconds, "workers": workers, "embed": t_embed, "fad": t_fad,
           "fad_with_fad_inf": t_inf, "fad_inf_settings": {"steps": 10, "bootstrap": 100}}
    for k in ("embed", "fad", "fad_with_fad_inf"):
        out[f"{k}_files_per_second"] = n / out[k]["median_s"]
    out["fad_vs_embed"] = out["fad_files_per_second"] / out["embed_files_per_second"]
    out["fad_with_fad_inf_vs_embed"] = out["fad_with_fad_inf_files_per_second"] / out["embed_files_per_second"]
    return out
