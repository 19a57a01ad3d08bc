"""The VGGish parameter layout as a plain nested dict, and moving it in and out of the Flax model.

Layout (what the weight converters produce and checkpoints hold):
    {'conv1': {'kernel': [3, 3, 1, 64], 'bias': [64]}, ..., 'fc2': {'kernel': [4096, 128], 'bias': [128]}}
Conv kernels are HWIO, dense kernels [in, out]; fc1_1's input rows are in H, W, C flatten order.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vggish_jax.models import loading
from vggish_jax.models.vggish.modeling import VGGish, param_shapes


class WeightsError(ValueError):
    """Weights missing, of the wrong shape, or not finite. The message names the tensor."""


def validate(params: dict, source: str = "params", width_divisor: int = 1) -> None:
    """Check names and shapes against the reference layout (of a `width_divisor` model); raise WeightsError
    naming the first bad tensor."""
    expected = param_shapes(width_divisor)
    missing = sorted(f"{l}/{k}" for l, d in expected.items() for k in d if k not in params.get(l, {}))
    extra = sorted(f"{l}/{k}" for l, d in params.items() for k in (d if isinstance(d, dict) else {"": 0})
                   if k not in expected.get(l, {}))
    if missing:
        raise WeightsError(f"{source}: missing tensors {missing}")
    if extra:
        raise WeightsError(f"{source}: unexpected tensors {extra}")
    for layer, d in expected.items():
        for k, shape in d.items():
            got = tuple(np.shape(params[layer][k]))
            if got != shape:
                what = "" if width_divisor == 1 else f" (of a width_divisor={width_divisor} VGGish)"
                raise WeightsError(f"{source}: tensor {layer}/{k} has shape {got}, expected {shape}{what}")
            if not np.all(np.isfinite(np.asarray(params[layer][k], dtype=np.float32))):
                raise WeightsError(f"{source}: tensor {layer}/{k} contains NaN/inf; the weight file is corrupt")


def to_dict(model: VGGish) -> dict:
    """Model parameters as a nested dict of numpy arrays."""
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def build(params: dict, *, final_relu: bool = False, dtype=jnp.float32, source: str = "params",
          width_divisor: int = 1) -> VGGish:
    """A VGGish model holding `params` (validated first against the `width_divisor` layout)."""
    validate(params, source, width_divisor)
    return loading.from_pure_dict(
        lambda: VGGish(final_relu=final_relu, dtype=dtype, width_divisor=width_divisor, rngs=nnx.Rngs(0)),
        params, nnx.Param)


def random(seed: int = 0, width_divisor: int = 1) -> dict:
    """Randomly initialised parameters in the reference layout (tests, benchmarks, smoke runs); a
    width_divisor > 1 gives the same-shaped small model."""
    return to_dict(VGGish(width_divisor=width_divisor, rngs=nnx.Rngs(seed)))
