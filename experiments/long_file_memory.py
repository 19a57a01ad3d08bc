"""Peak memory of embedding one long file through `Embedder.iter_files` (issue 18 item 2: it must not grow
with the file's length; target: a 10-hour file within 1.5 GB).

Writes a `--seconds` long 16 kHz mono int16 wav (a slowly sweeping tone plus noise, written in blocks),
then, in a fresh process (so VmHWM is that run's alone), embeds it with the weights in `--weights` (default:
a small width_divisor=8 random VGGish) and prints JSON: seconds, rows, peak_rss_mb, wall_s.

    python experiments/long_file_memory.py --seconds 36000 [--weights DIR] [--keep FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def write_wav(path: str, seconds: float, sr: int = 16000, block_s: int = 600) -> None:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        done = 0
        total = int(seconds * sr)
        while done < total:
            n = min(block_s * sr, total - done)
            t = (done + np.arange(n)) / sr
            x = 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * t / 97.0)) * t) + 0.02 * rng.standard_normal(n)
            f.write(x.astype(np.float32))
            done += n


def measure(path: str, weights: str) -> dict:
    from benchmarks.common import peak_rss_mb
    from vggish_jax.pipeline.embed import load_pretrained

    t0 = time.perf_counter()
    (p, rows), = load_pretrained(weights).iter_files([path], workers=1)
    return {"rows": int(rows.shape[0]), "peak_rss_mb": peak_rss_mb(), "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--weights", help="a converted weights directory (default: a small random VGGish)")
    ap.add_argument("--keep", help="write the wav here and keep it (default: a temporary file)")
    ap.add_argument("--child", nargs=2, metavar=("WAV", "WEIGHTS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return 0
    with tempfile.TemporaryDirectory() as d:
        weights = args.weights
        if weights is None:
            from vggish_jax.models.vggish import modeling, params

            weights = params.save(os.path.join(d, "w"), modeling.random(0, width_divisor=8))
        wav = args.keep or os.path.join(d, "long.wav")
        if not os.path.exists(wav):
            write_wav(wav, args.seconds)
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--seconds", "0", "--child", wav, weights],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-3000:])
            return proc.returncode
        out = {"seconds": args.seconds, **json.loads(proc.stdout.strip().splitlines()[-1])}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
