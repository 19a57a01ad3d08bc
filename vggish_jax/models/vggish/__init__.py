"""VGGish: modeling (Flax NNX module), params (layout, validation), frontend (NumPy oracle), frontend_jax
(jitted), postprocess (PCA + uint8), pretrained (weights directories), torch_reference (a PyTorch peer).

The model's names (VGGish, CONV_CHANNELS, param_shapes, ...) are re-exported from `modeling` on first use,
so importing the NumPy frontend from here does not import jax or flax.
"""
import importlib


def __getattr__(name):
    modeling = importlib.import_module("vggish_jax.models.vggish.modeling")
    try:
        return getattr(modeling, name)
    except AttributeError:
        raise AttributeError(f"module 'vggish_jax.models.vggish' has no attribute {name!r}") from None
