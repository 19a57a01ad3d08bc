"""VGGish backbone + the paper's clip head: the 31 x 128 frame embeddings flattened (3968-d) -> 256 -> classes.

The head sees frame embeddings in time order, as in the paper; clips are cropped or cyclically padded to 31
examples by the input pipeline (the same rule as vggish_jax.features.flatten).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vggish_jax.models.vggish import VGGish


class GenreClassifier(nnx.Module):
    def __init__(self, num_classes: int, *, examples_per_clip: int = 31, hidden: int = 256, final_relu: bool = True,
                 dtype=jnp.float32, width_divisor: int = 1, rngs: nnx.Rngs):
        self.backbone = VGGish(final_relu=final_relu, dtype=dtype, width_divisor=width_divisor, rngs=rngs)
        self.hidden = nnx.Linear(examples_per_clip * 128, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, mel: jax.Array) -> jax.Array:
        """[batch, 31, 96, 64] -> [batch, classes] logits (float32)."""
        b, n = mel.shape[:2]
        emb = self.backbone(mel.reshape(b * n, *mel.shape[2:])).astype(jnp.float32)
        return self.out(nnx.relu(self.hidden(emb.reshape(b, -1))))
