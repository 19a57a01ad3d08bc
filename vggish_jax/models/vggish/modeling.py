"""VGGish in Flax NNX, with the reference architecture and parameter layout.

Input [batch, 96, 64] log-mel examples (or [batch, 96, 64, 1]); output [batch, 128]. Six 3x3 SAME convs
(64, 128, 256, 256, 512, 512) with ReLU, 2x2 max-pool after conv 1, 2, 4 and 6, flatten the [6, 4, 512] map
in H, W, C order, then fully connected 4096, 4096, 128. Layer names follow the TF-slim checkpoint
(conv3/conv3_1 -> conv3_1, fc1/fc1_2 -> fc1_2, ...); kernels are HWIO and [in, out] as in TF.

The current TF reference has no ReLU after the last layer; torchvggish and the paper's pipeline apply one.
`final_relu` selects between them and is recorded with every result.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vggish_jax.models import loading

CONV_CHANNELS = (("conv1", 64), ("conv2", 128), ("conv3_1", 256), ("conv3_2", 256), ("conv4_1", 512), ("conv4_2", 512))
POOL_AFTER = frozenset({"conv1", "conv2", "conv3_2", "conv4_2"})
FC_FEATURES = (("fc1_1", 4096), ("fc1_2", 4096), ("fc2", 128))
FLAT_SHAPE = (6, 4, 512)
EMBEDDING_SIZE = 128


class VGGish(nnx.Module):
    def __init__(self, *, final_relu: bool = False, dtype: jnp.dtype = jnp.float32,
                 param_dtype: jnp.dtype = jnp.float32, width_divisor: int = 1, rngs: nnx.Rngs | None = None):
        """width_divisor > 1 divides every hidden width (not the 128-d output): a same-shaped small model
        for tests and quick experiments; the real VGGish is width_divisor=1."""
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        self.final_relu = final_relu
        in_ch = 1
        for name, ch in CONV_CHANNELS:
            ch //= width_divisor
            setattr(self, name, nnx.Conv(in_ch, ch, (3, 3), padding="SAME", dtype=dtype,
                                         param_dtype=param_dtype, rngs=rngs))
            in_ch = ch
        in_f = FLAT_SHAPE[0] * FLAT_SHAPE[1] * in_ch
        for name, f in FC_FEATURES:
            f = f if name == "fc2" else f // width_divisor
            setattr(self, name, nnx.Linear(in_f, f, dtype=dtype, param_dtype=param_dtype, rngs=rngs))
            in_f = f

    def features(self, x: jax.Array) -> jax.Array:
        """Conv stack: [batch, 96, 64(, 1)] -> flattened [batch, 12288] (H, W, C order)."""
        if x.ndim == 3:
            x = x[..., None]
        for name, _ in CONV_CHANNELS:
            x = nnx.relu(getattr(self, name)(x))
            if name in POOL_AFTER:
                x = nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        return x.reshape(x.shape[0], -1)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.features(x)
        x = nnx.relu(self.fc1_1(x))
        x = nnx.relu(self.fc1_2(x))
        x = self.fc2(x)
        return nnx.relu(x) if self.final_relu else x


def num_params(model: nnx.Module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def param_shapes() -> dict:
    """{layer: {'kernel': shape, 'bias': shape}} of the reference layout, without allocating weights."""
    return loading.shapes(lambda: VGGish(rngs=nnx.Rngs(0)), nnx.Param)
