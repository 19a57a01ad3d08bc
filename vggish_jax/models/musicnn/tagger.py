"""MSD_musicnn as a tagger (weights in vggish_jax/assets): a file's 3-s patches -> the 50 MSD tag probabilities
and the 200-d penultimate features."""
from __future__ import annotations

import functools
import os

import jax
import numpy as np
from flax import nnx

from vggish_jax import audio
from vggish_jax.models.musicnn import frontend as mf

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "assets",
                       "msd_musicnn.npz")
TAGS = ("rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
        "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
        "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
        "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
        "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
        "indie pop", "sad", "House", "happy")


@functools.lru_cache(maxsize=2)
def _load(weights: str) -> tuple:
    """(model, state, jitted forward) of a weights file: loaded once per process, shared by every Tagger."""
    from vggish_jax.models.musicnn.modeling import from_flat

    if not os.path.exists(weights):
        raise FileNotFoundError(f"{weights}: MusiCNN weights missing; reinstall vggish-jax "
                                f"(they ship in its assets)")
    with np.load(weights) as z:
        model = from_flat({k: z[k] for k in z.files})
    graphdef, state = nnx.split(model)
    return model, state, jax.jit(lambda s, x: nnx.merge(graphdef, s).features(x))


class Tagger:
    """MSD_musicnn (the shipped weights) with its jitted forward pass: patches -> tag probabilities and features."""

    def __init__(self, weights: str = WEIGHTS, batch_size: int = 16):
        self.model, self._state, self._forward = _load(os.path.abspath(weights))
        self.batch_size = batch_size

    def iter_patches(self, path: str, chunk: int = 64):
        """[k <= chunk, 187, 96] patches of a file, streamed: memory stays bounded for any length."""
        seen = [0]

        def blocks():
            for b in audio.stream(path, mf.SR):
                seen[0] += b.shape[0]
                yield b

        n = 0
        for p in mf.stream_patches(blocks(), chunk):
            n += p.shape[0]
            yield p
        if n == 0:
            raise audio.AudioError(f"{path}: {seen[0] / mf.SR:.2f} s is shorter than one MusiCNN patch "
                                   f"({mf.min_samples() / mf.SR:.2f} s); use a longer clip")

    def run(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        """[n, 187, 96] -> {'taggram': [n, 50], 'penultimate': [n, 200]} in fixed-size jitted batches."""
        from vggish_jax.models.batching import fixed_batches

        outs = {"taggram": [], "penultimate": []}
        for padded, k in fixed_batches(patches, self.batch_size):
            f = self._forward(self._state, padded)
            outs["taggram"].append(np.asarray(jax.nn.sigmoid(f["logits"]))[:k])
            outs["penultimate"].append(np.asarray(f["penultimate"])[:k])
        return {k: np.concatenate(v) for k, v in outs.items()}

    def embed(self, path: str) -> np.ndarray:
        """[patches, 200] penultimate-layer features (MusiCNN embeddings) of a file."""
        return np.concatenate([self.run(p)["penultimate"] for p in self.iter_patches(path)])
