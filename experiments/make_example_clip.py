"""Synthesise the bundled example clip (vggish_jax/assets/example.mp3): 8 s of drums, bass and chords.

    python -m experiments.make_example_clip

Generated here, so it carries no third-party rights. Deterministic (seeded).
"""
import os
import sys

import numpy as np
import soundfile as sf

SR = 22050


def envelope(n, attack, decay):
    t = np.arange(n) / SR
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def clip(seconds=8.0, bpm=120, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.zeros(n)
    beat = int(SR * 60 / bpm)
    for i, start in enumerate(range(0, n, beat // 2)):
        k = min(n - start, int(0.25 * SR))
        t = np.arange(k) / SR
        if i % 4 == 0:  # kick: falling sine
            out[start:start + k] += 0.8 * np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * envelope(k, 0.002, 0.12)
        if i % 4 == 2:  # snare: noise burst + tone
            out[start:start + k] += (0.4 * rng.standard_normal(k) + 0.2 * np.sin(2 * np.pi * 190 * t)) * envelope(k, 0.001, 0.07)
        out[start:start + k] += 0.1 * rng.standard_normal(k) * envelope(k, 0.001, 0.015)  # hi-hat
    roots = [55.0, 55.0 * 2 ** (8 / 12), 55.0 * 2 ** (3 / 12), 55.0 * 2 ** (10 / 12)]  # A F C G
    bar = 4 * beat
    for b, start in enumerate(range(0, n, bar)):
        k = min(n - start, bar)
        t = np.arange(k) / SR
        r = roots[b % 4]
        out[start:start + k] += 0.35 * np.sign(np.sin(2 * np.pi * r * t)) * envelope(k, 0.01, 1.5) * 0.6
        for interval in (0, 4 if b % 2 == 0 else 3, 7):
            f = 4 * r * 2 ** (interval / 12)
            out[start:start + k] += 0.08 * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t)) * envelope(k, 0.05, 3.0)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def main(argv=None):
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vggish_jax", "assets", "example.mp3")
    path = (argv or sys.argv[1:] or [default])[0]
    sf.write(path, clip(), SR, format="MP3")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
