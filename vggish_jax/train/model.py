"""VGGish backbone + a clip head (Config.head): "flatten" (the paper's: the examples_per_clip x 128 embeddings
flattened, 3968-d for 30 s, -> 256 -> classes) or "frame_mean" (128 -> 256 -> classes per frame, logits averaged).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vggish_jax.models.vggish.modeling import VGGish
from vggish_jax.train.config import EXAMPLES_PER_CLIP


class GenreClassifier(nnx.Module):
    def __init__(self, num_classes: int, *, examples_per_clip: int = EXAMPLES_PER_CLIP, hidden: int = 256,
                 final_relu: bool = True,
                 dtype=jnp.float32, width_divisor: int = 1, head: str = "flatten", rngs: nnx.Rngs):
        if head not in ("flatten", "frame_mean"):
            raise ValueError(f"head must be flatten or frame_mean, got {head!r}")
        self.head = head
        self.backbone = VGGish(final_relu=final_relu, dtype=dtype, width_divisor=width_divisor, rngs=rngs)
        self.hidden = nnx.Linear((examples_per_clip if head == "flatten" else 1) * 128, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, mel: jax.Array) -> jax.Array:
        """[batch, examples, 96, 64] -> [batch, classes] logits (float32)."""
        b, n = mel.shape[:2]
        emb = self.backbone(mel.reshape(b * n, *mel.shape[2:])).astype(jnp.float32)
        if self.head == "frame_mean":
            return self.out(nnx.relu(self.hidden(emb.reshape(b, n, -1)))).mean(axis=1)
        return self.out(nnx.relu(self.hidden(emb.reshape(b, -1))))
