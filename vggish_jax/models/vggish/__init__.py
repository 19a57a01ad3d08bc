"""VGGish: modeling (the Flax NNX module, forward, from_pretrained), params (layout, the one validation, the
weights folder), hub (the safetensors folder of save_pretrained), frontend (NumPy oracle), frontend_jax (jitted),
postprocess (PCA + uint8), convert/ (published files -> a weights folder).

The model's names (VGGish, CONV_CHANNELS, param_shapes, ...) are re-exported from `modeling` on first use,
so importing the NumPy frontend from here does not import jax or flax.
"""
import importlib


# `from vggish_jax.models.vggish import frontend` asks this package for the attribute first; answering with
# the submodule keeps that from importing modeling (and flax) on the way.
_SUBMODULES = frozenset({"convert", "frontend", "frontend_jax", "hub", "modeling", "params", "postprocess"})


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    modeling = importlib.import_module("vggish_jax.models.vggish.modeling")
    try:
        return getattr(modeling, name)
    except AttributeError:
        raise AttributeError(f"module 'vggish_jax.models.vggish' has no attribute {name!r}") from None
