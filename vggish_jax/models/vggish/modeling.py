"""VGGish in Flax NNX, with the reference architecture and parameter layout.

Input [batch, 96, 64] log-mel examples (or [batch, 96, 64, 1]); output [batch, 128]. Six 3x3 SAME convs
(64, 128, 256, 256, 512, 512) with ReLU, 2x2 max-pool after conv 1, 2, 4 and 6, flatten the [6, 4, 512] map
in H, W, C order, then fully connected 4096, 4096, 128. Layer names follow the TF-slim checkpoint
(conv3/conv3_1 -> conv3_1, fc1/fc1_2 -> fc1_2, ...); kernels are HWIO and [in, out] as in TF.

The current TF reference has no ReLU after the last layer; torchvggish and the paper's pipeline apply one.
`final_relu` selects between them and is recorded with every result.

`VGGish.from_pretrained(dir)` loads a converted weights directory and attaches its EmbeddingSpec (`.spec`)
and PCA params (`.pca`, None if absent). They are kept beside the module, not in its graph, so the graph
(and with it every compilation of `forward`) is the same for every VGGish of one shape and dtype.
`forward(graphdef, state, x)` is the one jitted forward pass: the graph is static, the state an argument,
so models and Embedders share compilations.
"""
from __future__ import annotations

import functools
import os
import weakref
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vggish_jax.models import loading
from vggish_jax.models.vggish import pretrained
from vggish_jax.models.vggish.pretrained import WeightsError

if TYPE_CHECKING:
    from vggish_jax.models.vggish.postprocess import PCAParams
    from vggish_jax.spec import EmbeddingSpec

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
        # One spelling of each dtype (jnp.float32 and np.dtype("float32") are equal but hash apart), so equal
        # models have equal graphs and share compilations.
        dtype, param_dtype = jnp.dtype(dtype), jnp.dtype(param_dtype)
        self.final_relu = final_relu
        self.width_divisor = width_divisor
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

    @classmethod
    def from_pretrained(cls, weights_dir: str | os.PathLike, *, final_relu: bool | None = None,
                        dtype=jnp.float32) -> "VGGish":
        """The model in a weights directory written by `vggish-jax convert`, with `.spec` (how its raw
        embeddings are made) and `.pca` attached. `final_relu` overrides what the weights record."""
        return load_pretrained_model(weights_dir, final_relu=final_relu, dtype=dtype)[0]

    def attach(self, *, spec: "EmbeddingSpec | None" = None, pca: "PCAParams | None" = None) -> None:
        """Record this model's EmbeddingSpec and PCA params (outside the graph; see the module doc)."""
        _ATTACHED[self] = (spec, pca)

    @property
    def spec(self) -> "EmbeddingSpec | None":
        """How this model's raw embeddings are made (from_pretrained attaches it; None if never attached)."""
        return _ATTACHED.get(self, (None, None))[0]

    @property
    def pca(self) -> "PCAParams | None":
        return _ATTACHED.get(self, (None, None))[1]

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


# model -> (spec, pca): weak, so a dropped model takes its record with it.
_ATTACHED: "weakref.WeakKeyDictionary[VGGish, tuple]" = weakref.WeakKeyDictionary()


@functools.partial(jax.jit, static_argnums=0)
def forward(graphdef: nnx.GraphDef, state: nnx.State, x: jax.Array) -> jax.Array:
    """The one jitted VGGish forward: [batch, 96, 64] log-mel -> [batch, 128] float32. Shardings follow the
    inputs (committed with jax.device_put), so one compilation serves every model of this graph."""
    return nnx.merge(graphdef, state)(x).astype(jnp.float32)


def num_params(model: nnx.Module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def param_shapes(width_divisor: int = 1) -> dict:
    """{layer: {'kernel': shape, 'bias': shape}} of the reference layout (or of a width_divisor model),
    without allocating weights."""
    return loading.shapes(lambda: VGGish(width_divisor=width_divisor, rngs=nnx.Rngs(0)), nnx.Param)


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


def build(params: dict, *, final_relu: bool = False, dtype=jnp.float32, source: str = "params",
          width_divisor: int = 1) -> VGGish:
    """A VGGish model holding `params` (validated first against the `width_divisor` layout)."""
    validate(params, source, width_divisor)
    return loading.from_pure_dict(
        lambda: VGGish(final_relu=final_relu, dtype=dtype, width_divisor=width_divisor, rngs=nnx.Rngs(0)),
        params, nnx.Param)


def load_pretrained_model(directory: str | os.PathLike, *, final_relu: bool | None = None,
                          dtype=jnp.float32) -> tuple[VGGish, dict]:
    """(VGGish with its spec and PCA params attached, weights metadata) from a weights directory; the
    tensors must have the layout of the width_divisor the metadata records."""
    p, pca, meta = pretrained.load(directory)
    name = os.fspath(directory)
    if meta.get("model", "vggish") != "vggish":
        raise WeightsError(f"{name}: holds {meta['model']} weights, not VGGish")
    divisor = pretrained.width_divisor_of(meta)
    try:
        validate(p, os.path.join(name, pretrained.TREE), divisor)
    except WeightsError as e:
        raise WeightsError(f"{e}, as {os.path.join(name, pretrained.METADATA)} records; convert the weights "
                           f"again with `vggish-jax convert ... --out {name} --overwrite`") from None
    relu = pretrained.final_relu_of(meta, final_relu)
    model = build(p, final_relu=relu, dtype=dtype, source=name, width_divisor=divisor)
    model.attach(spec=pretrained.spec_of(meta, final_relu=relu, dtype=jnp.dtype(dtype).name), pca=pca)
    return model, meta
