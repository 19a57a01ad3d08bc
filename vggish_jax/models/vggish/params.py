"""The VGGish parameter layout as a plain nested dict, and moving it in and out of the Flax model.

Layout (what the weight converters produce and checkpoints hold):
    {'conv1': {'kernel': [3, 3, 1, 64], 'bias': [64]}, ..., 'fc2': {'kernel': [4096, 128], 'bias': [128]}}
Conv kernels are HWIO, dense kernels [in, out]; fc1_1's input rows are in H, W, C flatten order.
"""
from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from vggish_jax.models.vggish.modeling import VGGish, build, validate  # noqa: F401  (re-exported)
from vggish_jax.models.vggish.pretrained import WeightsError  # noqa: F401  (re-exported)


def to_dict(model: VGGish) -> dict:
    """Model parameters as a nested dict of numpy arrays."""
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def random(seed: int = 0, width_divisor: int = 1) -> dict:
    """Randomly initialised parameters in the reference layout (tests, benchmarks, smoke runs); a
    width_divisor > 1 gives the same-shaped small model."""
    return to_dict(VGGish(width_divisor=width_divisor, rngs=nnx.Rngs(seed)))
