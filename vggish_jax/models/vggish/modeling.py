"""VGGish in Flax NNX, with the reference architecture and parameter layout.

[batch, 96, 64(, 1)] log-mel -> [batch, 128]: six 3x3 SAME convs (64, 128, 256, 256, 512, 512) with ReLU,
2x2 max-pool after conv 1, 2, 4 and 6, flatten [6, 4, 512] in H, W, C order, fully connected 4096, 4096,
128. Names follow the TF-slim checkpoint (conv3/conv3_1 -> conv3_1, ...); kernels HWIO and [in, out]. The
TF reference has no ReLU after the last layer, torchvggish has one: `final_relu` picks, and is recorded.
`from_pretrained` attaches the EmbeddingSpec (`.spec`) and PCA params (`.pca`) beside the module, not in its
graph, so every VGGish of one shape and dtype shares the compilations of the jitted `forward`.
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
from vggish_jax.models.vggish import hub, params as params_lib
from vggish_jax.models.vggish.params import (  # noqa: F401  (the layout's names, re-exported for the model's users)
    CONV_CHANNELS, EMBEDDING_SIZE, FC_FEATURES, FLAT_SHAPE, POOL_AFTER, WeightsError, param_shapes)

if TYPE_CHECKING:
    from vggish_jax.models.vggish.postprocess import PCAParams
    from vggish_jax.spec import EmbeddingSpec


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
        for name, shapes in param_shapes(width_divisor).items():  # the one layout: params.py
            kernel = shapes["kernel"]
            kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            setattr(self, name, nnx.Conv(*kernel[2:], kernel[:2], padding="SAME", **kw) if len(kernel) == 4
                    else nnx.Linear(*kernel, **kw))

    @classmethod
    def from_pretrained(cls, weights_dir: str | os.PathLike, *, final_relu: bool | None = None,
                        dtype=jnp.float32) -> "VGGish":
        """The model in a weights directory written by `vggish-jax convert` or by `save_pretrained`, or in
        a Hugging Face Hub repo ("org/name", downloaded when no such folder exists here), with `.spec` (how
        its raw embeddings are made) and `.pca` attached. `final_relu` overrides what the weights record."""
        return load_pretrained_model(hub.resolve(weights_dir), final_relu=final_relu, dtype=dtype)[0]

    def save_pretrained(self, directory: str | os.PathLike) -> str:
        """Write this model as model.safetensors + config.json (its spec and where its weights came from) +
        a README.md model card (hub.py); `from_pretrained(directory)` reads it back exactly."""
        from vggish_jax.spec import EmbeddingSpec, params_sha256

        p = to_dict(self)
        spec = self.spec or EmbeddingSpec.create(weights_sha256=params_sha256(p), final_relu=self.final_relu)
        config = {**_ATTACHED.get(self, (None, None, {}))[2], "final_relu": bool(self.final_relu),
                  "spec": spec.to_dict()}
        return hub.save(directory, p, pca=self.pca, config=config)

    def attach(self, *, spec: "EmbeddingSpec | None" = None, pca: "PCAParams | None" = None,
               provenance: dict | None = None) -> None:
        """Record this model's EmbeddingSpec, PCA params and where its weights came from (the source and
        file hashes convert recorded) outside the graph; see the module doc."""
        _ATTACHED[self] = (spec, pca, dict(provenance or {}))

    @property
    def spec(self) -> "EmbeddingSpec | None":
        """How this model's raw embeddings are made (from_pretrained attaches it; None if never attached)."""
        return _ATTACHED.get(self, (None, None, {}))[0]

    @property
    def pca(self) -> "PCAParams | None":
        return _ATTACHED.get(self, (None, None, {}))[1]

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


# model -> (spec, pca, provenance): weak, so a dropped model takes its record with it.
_ATTACHED: "weakref.WeakKeyDictionary[VGGish, tuple]" = weakref.WeakKeyDictionary()


@functools.partial(jax.jit, static_argnums=0)
def forward(graphdef: nnx.GraphDef, state: nnx.State, x: jax.Array) -> jax.Array:
    """The one jitted VGGish forward: [batch, 96, 64] log-mel -> [batch, 128] float32. Shardings follow the
    inputs (committed with jax.device_put), so one compilation serves every model of this graph."""
    return nnx.merge(graphdef, state)(x).astype(jnp.float32)


def to_dict(model: VGGish) -> dict:
    """Model parameters as a nested dict of numpy arrays (the params.py layout)."""
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def random(seed: int = 0, width_divisor: int = 1) -> dict:
    """Randomly initialised parameters in the reference layout (tests, benchmarks, smoke runs); a
    width_divisor > 1 gives the same-shaped small model."""
    return to_dict(VGGish(width_divisor=width_divisor, rngs=nnx.Rngs(seed)))


def build(params: dict, *, final_relu: bool = False, dtype=jnp.float32, source: str = "params",
          width_divisor: int = 1) -> VGGish:
    """A VGGish model holding `params` (checked first by params.validate against the `width_divisor` layout)."""
    params_lib.validate(params, source, width_divisor)
    return loading.from_pure_dict(
        lambda: VGGish(final_relu=final_relu, dtype=dtype, width_divisor=width_divisor, rngs=nnx.Rngs(0)),
        params, nnx.Param)


def load_pretrained_model(directory: str | os.PathLike, *, final_relu: bool | None = None,
                          dtype=jnp.float32) -> tuple[VGGish, dict]:
    """(VGGish with its spec and PCA params attached, weights metadata) from a weights directory; the
    tensors must have the layout of the width_divisor the metadata records."""
    p, pca, meta = (hub.load if hub.is_hub_folder(directory) else params_lib.load)(directory)
    name = os.fspath(directory)
    if meta.get("model", "vggish") != "vggish":
        raise WeightsError(f"{name}: holds {meta['model']} weights, not VGGish")
    relu = params_lib.final_relu_of(meta, final_relu)
    try:
        model = build(p, final_relu=relu, dtype=dtype, source=os.path.join(name, params_lib.TREE),
                      width_divisor=params_lib.width_divisor_of(meta))
    except WeightsError as e:
        raise WeightsError(f"{e}, as {os.path.join(name, params_lib.METADATA)} records; convert the weights "
                           f"again with `vggish-jax convert ... --out {name} --overwrite`") from None
    model.attach(spec=params_lib.spec_of(meta, final_relu=relu, dtype=jnp.dtype(dtype).name), pca=pca,
                 provenance={k: meta[k] for k in ("source", "hashes", "seed") if k in meta})
    return model, meta
