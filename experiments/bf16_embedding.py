"""bfloat16 embedding against float32: the error, whether it matters for FAD and for classifiers, and the speed.

- error: relative L2 error per frame of bf16 embeddings vs f32 on the bundled clip (vggish_jax/assets/
  example.mp3) and on a set of synthetic music clips (experiments.make_example_clip's generator, varied tempo
  and seed), random weights (the only weights this repository may ship);
- FAD: between the f32 and bf16 embeddings of the same set, against the FAD between two halves of the set
  in f32 (the distance a real difference in audio has to beat); and each half's FAD to the other half in
  bf16 vs f32 (how much a reported score moves);
- classifiers: a frame's nearest neighbour among the other clips' frames, f32 vs bf16 (unchanged share), and
  a logistic regression fitted on f32 (clip tempo class) applied to bf16 embeddings (agreement);
- speed: model-only frames/s at the default batch (64), bf16 vs f32, on this machine.

    python -m experiments.bf16_embedding [--clips 24] [--out results/bench-bf16-<machine>.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def rel_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1) / np.maximum(np.linalg.norm(b, axis=-1), 1e-12)


def fad(a: np.ndarray, b: np.ndarray) -> float:
    from vggish_jax.fad.frechet import frechet_distance

    return float(frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)).distance)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import jax.numpy as jnp

    from experiments.make_example_clip import SR, clip
    from vggish_jax import audio
    from benchmarks.common import machine_info, timed
    from vggish_jax.models.vggish import modeling
    from vggish_jax.pipeline.embed import Embedder

    p = modeling.random(0)
    emb = {d: Embedder(p, dtype=getattr(jnp, d), final_relu=False) for d in ("float32", "bfloat16")}
    example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vggish_jax", "assets",
                           "example.mp3")
    ex = {d: e.embed_file(example) for d, e in emb.items()}
    # a set: tempo classes 90/120/150 bpm, seeds vary the drums; 30 s each (31 frames)
    tempos = (90, 120, 150)
    waves = [audio.resample(clip(30.0, bpm=tempos[i % 3], seed=i), SR) for i in range(args.clips)]
    sets = {d: [e._embed_16k(w) for w in waves] for d, e in emb.items()}
    frames = {d: np.concatenate(v) for d, v in sets.items()}
    clip_of = np.concatenate([np.full(len(v), i) for i, v in enumerate(sets["float32"])])
    tempo_of = np.asarray([i % 3 for i in range(args.clips)])[clip_of]

    err = rel_err(frames["bfloat16"], frames["float32"])
    half = clip_of < args.clips // 2
    f32, b16 = frames["float32"], frames["bfloat16"]
    # nearest neighbour among the other clips' frames (cosine), f32 vs bf16
    def nn(x):
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = u @ u.T
        s[clip_of[:, None] == clip_of[None, :]] = -np.inf
        return s.argmax(1)
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(f32[half], tempo_of[half])
    report = {
        "machine": machine_info(), "weights": "random (modeling.random(0))", "final_relu": False,
        "example_clip": {"frames": int(ex["float32"].shape[0]),
                         "relative_error_median": float(np.median(rel_err(ex["bfloat16"], ex["float32"]))),
                         "relative_error_max": float(rel_err(ex["bfloat16"], ex["float32"]).max())},
        "set": {"clips": args.clips, "frames": int(f32.shape[0]), "source": "experiments.make_example_clip, "
                "30 s, tempo 90/120/150 bpm, seed = clip index",
                "relative_error_median": float(np.median(err)), "relative_error_p99": float(np.quantile(err, 0.99)),
                "relative_error_max": float(err.max())},
        "fad": {"f32_vs_bf16_same_audio": fad(f32, b16),
                "halves_f32": fad(f32[half], f32[~half]), "halves_bf16": fad(b16[half], b16[~half])},
        "classifier": {"nearest_neighbour_unchanged": float(np.mean(nn(f32) == nn(b16))),
                       "logreg_agreement_on_held_out_half": float(np.mean(clf.predict(f32[~half]) ==
                                                                           clf.predict(b16[~half]))),
                       "logreg_accuracy_f32": float(clf.score(f32[~half], tempo_of[~half])),
                       "logreg_accuracy_bf16": float(clf.score(b16[~half], tempo_of[~half]))},
    }
    report["fad"]["f32_vs_bf16_over_halves"] = report["fad"]["f32_vs_bf16_same_audio"] / report["fad"]["halves_f32"]
    report["fad"]["halves_relative_change"] = abs(report["fad"]["halves_bf16"] / report["fad"]["halves_f32"] - 1)
    x = np.random.default_rng(0).standard_normal((64, 96, 64)).astype(np.float32)
    speed = {d: timed(lambda e=e: e.embed_examples(x), 3) for d, e in emb.items()}
    report["speed"] = {"batch": 64, **{f"{d}_frames_per_second": 64 / t["median_s"] for d, t in speed.items()},
                       "bf16_speedup": speed["float32"]["median_s"] / speed["bfloat16"]["median_s"],
                       "timings": speed, "load_average_end": list(os.getloadavg())}
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1, default=str))
    if args.out:
        from vggish_jax import atomic

        atomic.write_json(args.out, report, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
