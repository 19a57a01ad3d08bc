"""torchvggish release v0.1 files -> our parameter layout.

`features` Conv2d at 0, 3, 6, 8, 11, 13 (OIHW), `embeddings` Linear at 0, 2, 4 ([out, in]); its forward moves
channels last, so fc1's columns are in H, W, C order. The PCA .pth (2019, legacy torch.save, NumPy 1.x) is a
dict of two float64 NumPy arrays, pca_means [128] or [128, 1]. Also read: dicts under 'state_dict' / 'model',
half-precision tensors (widened); keys that are not VGGish tensors are refused by name.
"""
from __future__ import annotations

import os
import re

import numpy as np

from vggish_jax.models.vggish import params as params_lib
from vggish_jax.models.vggish.convert import formats
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.postprocess import PCAParams

CONV_KEYS = {"conv1": "features.0", "conv2": "features.3", "conv3_1": "features.6", "conv3_2": "features.8",
             "conv4_1": "features.11", "conv4_2": "features.13"}
FC_KEYS = {"fc1_1": "embeddings.0", "fc1_2": "embeddings.2", "fc2": "embeddings.4"}
NESTED = ("state_dict", "model")  # where training checkpoints keep the state dict


def _array_globals() -> list:
    """What torch's weights-only unpickler must accept for a pickled NumPy array: _reconstruct under both
    numpy.core (NumPy 1.x, the published PCA file) and numpy._core names, ndarray and dtype."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    # A dtype is rebuilt by calling np.dtype, then its state is set on an instance of its class.
    dtype_classes = [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                                  np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)]
    return [(_reconstruct, "numpy.core.multiarray._reconstruct"), (_reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, *dtype_classes]


# How torch's weights-only unpickler names what it refused (checked with torch 2.13): a global, or a class
# it would have to build.
_REFUSED = re.compile(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>")


def load_pth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A .pth state dict as NumPy arrays, via torch.load(weights_only=True) plus only the NumPy array globals:
    nothing from the file runs."""
    path = os.fspath(path)
    try:
        import torch
    except ImportError as e:
        raise WeightsError(f"{path}: reading .pth files needs torch; pip install 'vggish-jax[torch]'") from e
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file; download it or pass --download")
    formats.require(path, ("torch",), "a PyTorch .pth file", "pass torchvggish's vggish-10086976.pth / "
                    "vggish_pca_params-970ea276.pth (or a TF vggish_pca_params.npz, also as --pca)")
    try:
        with torch.serialization.safe_globals(_array_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        refused = _REFUSED.search(str(e))
        if refused:
            raise WeightsError(
                f"{path}: refused: this file contains {refused.group(1) or refused.group(2)}, which is not a plain "
                f"tensor or array, so loading it could run code; it is not a VGGish weights file as published") from e
        raise WeightsError(f"{path}: not a readable PyTorch state dict ({type(e).__name__}: "
                           f"{_first_line(e)}); the file is truncated or corrupt, download it again") from e
    for key in NESTED:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k: _to_numpy(v, torch) for k, v in state.items()}


def _to_numpy(v, torch):
    if not hasattr(v, "detach"):
        return v if isinstance(v, dict) else np.asarray(v)
    v = v.detach().cpu()
    if v.is_floating_point() and v.dtype not in (torch.float32, torch.float64):
        v = v.float()  # float16/bfloat16 checkpoints; the converted weights are float32 anyway
    return v.numpy()


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:200]


def params_from_state_dict(state: dict[str, np.ndarray], source: str = "state dict") -> dict:
    """torchvggish state dict -> {'conv1': {'kernel' HWIO, 'bias'}, ..., 'fc2': {'kernel' [in, out], 'bias'}},
    checked by params.validate (naming the torch tensors). Keys that are not VGGish tensors are refused."""
    def get(key):
        if key not in state:
            raise WeightsError(f"{source}: missing tensor {key!r}; is this a torchvggish VGGish state dict?")
        return np.asarray(state[key], np.float32)

    keys = {**CONV_KEYS, **FC_KEYS}
    params = {}
    for name, key in CONV_KEYS.items():
        w = get(f"{key}.weight")
        if w.ndim != 4:
            raise WeightsError(f"{source}: tensor {key}.weight has shape {w.shape}, expected a 4-d OIHW kernel")
        params[name] = {"kernel": np.transpose(w, (2, 3, 1, 0)), "bias": get(f"{key}.bias")}
    for name, key in FC_KEYS.items():
        w = get(f"{key}.weight")
        if w.ndim != 2:
            raise WeightsError(f"{source}: tensor {key}.weight has shape {w.shape}, expected 2-d [out, in]")
        params[name] = {"kernel": np.ascontiguousarray(w.T), "bias": get(f"{key}.bias")}
    extra = sorted(set(state) - {f"{k}.{part}" for k in keys.values() for part in ("weight", "bias")})
    if extra:
        raise WeightsError(f"{source}: unexpected keys {extra}, not VGGish tensors; pass a torchvggish VGGish "
                           f"state dict (features.*, embeddings.*) such as vggish-10086976.pth")
    part = {"kernel": "weight", "bias": "bias"}
    params_lib.validate(params, source, name_of=lambda layer, k: f"{keys[layer]}.{part[k]}")
    return params


def pca_from_state_dict(state: dict[str, np.ndarray], source: str = "PCA file") -> PCAParams:
    return formats.pca(state, source, "tensor {key}; is this torchvggish's vggish_pca_params file?")
