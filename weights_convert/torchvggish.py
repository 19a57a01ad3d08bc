"""torchvggish release v0.1 files -> our parameter layout.

State-dict facts (harritaylor/torchvggish): `features` is an nn.Sequential whose Conv2d layers sit at indices
0, 3, 6, 8, 11, 13 (OIHW kernels); `embeddings` holds Linear layers at 0, 2, 4 ([out, in] weights). Its forward
moves channels last before flattening, so fc1's input columns are already in H, W, C order; the parity test
checks this against a PyTorch model of that architecture. The PCA file is a dict of two tensors,
'pca_eigen_vectors' [128, 128] and 'pca_means' [128].
"""
from __future__ import annotations

import os

import numpy as np

from vggish_jax.models.vggish.modeling import param_shapes
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.postprocess import PCAParams

CONV_KEYS = {"conv1": "features.0", "conv2": "features.3", "conv3_1": "features.6", "conv3_2": "features.8",
             "conv4_1": "features.11", "conv4_2": "features.13"}
FC_KEYS = {"fc1_1": "embeddings.0", "fc1_2": "embeddings.2", "fc2": "embeddings.4"}


def load_pth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A .pth state dict as numpy arrays. Uses torch.load(weights_only=True): no code runs from the file."""
    path = os.fspath(path)
    try:
        import torch
    except ImportError as e:
        raise WeightsError(f"{path}: reading .pth files needs torch; pip install 'vggish-jax[torch]'") from e
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file; download it or pass --download")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{path}: not a readable PyTorch state dict ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]}); the file is truncated or corrupt, download it again") from e
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v) for k, v in state.items()}


def params_from_state_dict(state: dict[str, np.ndarray], source: str = "state dict") -> dict:
    """torchvggish state dict -> {'conv1': {'kernel' HWIO, 'bias'}, ..., 'fc2': {'kernel' [in, out], 'bias'}}."""
    def get(key):
        if key not in state:
            raise WeightsError(f"{source}: missing tensor {key!r}; is this a torchvggish VGGish state dict?")
        return np.asarray(state[key], np.float32)

    expected = param_shapes()
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
    keys = {**CONV_KEYS, **FC_KEYS}
    for name, d in params.items():
        for part, torch_part in (("kernel", "weight"), ("bias", "bias")):
            if d[part].shape != expected[name][part]:
                raise WeightsError(f"{source}: tensor {keys[name]}.{torch_part} does not fit VGGish {name}/{part} "
                                   f"(converted shape {d[part].shape}, expected {expected[name][part]})")
    return params


def pca_from_state_dict(state: dict[str, np.ndarray], source: str = "PCA file") -> PCAParams:
    for key in ("pca_eigen_vectors", "pca_means"):
        if key not in state:
            raise WeightsError(f"{source}: missing tensor {key!r}; is this torchvggish's vggish_pca_params file?")
    ev = np.asarray(state["pca_eigen_vectors"])
    means = np.asarray(state["pca_means"]).reshape(-1)
    if ev.shape != (128, 128) or means.shape != (128,):
        raise WeightsError(f"{source}: pca_eigen_vectors {ev.shape} / pca_means {means.shape}, expected (128, 128) / (128,)")
    return PCAParams(ev, means)
