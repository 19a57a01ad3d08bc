"""VGGish: modeling (Flax NNX module), params (layout, validation), frontend (NumPy oracle), frontend_jax
(jitted), postprocess (PCA + uint8), pretrained (weights directories), torch_reference (a PyTorch peer).

The model's names (VGGish, CONV_CHANNELS, param_shapes, ...) are re-exported from `modeling` on first use,
so importing the NumPy frontend from here does not import jax or flax.
"""
import importlib


import pkgutil

# `from vggish_jax.models.vggish import frontend` asks this __getattr__ before importing the submodule, so
# submodules are imported as such (not via modeling, which would pull jax into jax-free decode workers).
_SUBMODULES = {m.name for m in pkgutil.iter_modules(__path__)}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    modeling = importlib.import_module("vggish_jax.models.vggish.modeling")
    try:
        return getattr(modeling, name)
    except AttributeError:
        raise AttributeError(f"module 'vggish_jax.models.vggish' has no attribute {name!r}") from None
