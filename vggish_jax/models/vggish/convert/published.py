"""Reading the published VGGish files into our parameter layout (params.py), refusing a wrong file by name.

torchvggish release v0.1: `features` Conv2d at 0, 3, 6, 8, 11, 13 (OIHW), `embeddings` Linear at 0, 2, 4
([out, in]); its forward moves channels last, so fc1's columns are in H, W, C order. Its PCA .pth (2019, legacy
torch.save, NumPy 1.x) is a dict of two float64 NumPy arrays, pca_means [128] or [128, 1]. Also read: dicts
under 'state_dict' / 'model', half-precision tensors (widened). Needs torch (`torch` extra).
TF-slim checkpoint (tensorflow/models research/audioset/vggish): variables vggish/<block>/[<layer>/]{weights,
biases}, HWIO and [in, out] as ours; its PCA .npz holds 'pca_eigen_vectors' [128, 128] and 'pca_means' [128, 1].
Needs TensorFlow (`tf` extra). A file's kind is read from its first bytes: torch.load and np.load report a text
file as a pickling error, which reads as a corrupt or malicious download. `fetch` downloads a published file into
a cache folder and verifies it: torchvggish's file names carry their SHA-256's first 8 hex digits (checked); no
full hash is hard-coded (none could be confirmed offline), but metadata.json records the SHA-256 of every file read.
"""
from __future__ import annotations

import dataclasses
import os
import re
import urllib.error
import zipfile

import numpy as np

from vggish_jax import download
from vggish_jax.models.vggish import params as params_lib
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.postprocess import PCAParams

# Our layer -> (torchvggish state-dict key, TF-slim variable scope): the one layout mapping of both formats.
NAMES = {"conv1": ("features.0", "conv1"), "conv2": ("features.3", "conv2"), "conv3_1": ("features.6", "conv3/conv3_1"),
         "conv3_2": ("features.8", "conv3/conv3_2"), "conv4_1": ("features.11", "conv4/conv4_1"),
         "conv4_2": ("features.13", "conv4/conv4_2"), "fc1_1": ("embeddings.0", "fc1/fc1_1"),
         "fc1_2": ("embeddings.2", "fc1/fc1_2"), "fc2": ("embeddings.4", "fc2")}
TORCH_PART, TF_PART = {"kernel": "weight", "bias": "bias"}, {"kernel": "weights", "bias": "biases"}
NESTED = ("state_dict", "model")  # where training checkpoints keep the state dict

_MAGIC = ((b"\x93NUMPY", "npy"), (b"\x80", "torch"))  # pickle protocol 2+: torch's legacy serialisation
_DESCRIBE = {"npz": "a NumPy .npz archive", "torch": "a PyTorch file", "npy": "a single NumPy .npy array",
             "empty": "empty", "text": "a text file (CSV or similar)", "unknown": "of an unknown format"}


def kind(path: str | os.PathLike) -> str:
    """'npz', 'torch' (legacy pickle or zip archive), 'npy', 'empty', 'text' or 'unknown'."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "empty"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "torch"  # a truncated archive: torch.load names it as truncated
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "torch" if any(n.endswith("data.pkl") for n in names) else "unknown"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown"


def require(path: str | os.PathLike, allowed: tuple[str, ...], what: str, fix: str) -> str:
    """The kind of `path` if it is one of `allowed`; else one WeightsError naming the file and what it is."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such file; check the path")
    found = kind(path)
    if found not in allowed:
        raise WeightsError(f"{path}: is {_DESCRIBE[found]}, not {what}; {fix}")
    return found


def pca(arrays, source: str, missing: str) -> PCAParams:
    """PCAParams from a published file's pca_eigen_vectors and pca_means, checked; `missing` ends the message
    naming an absent one."""
    for key in ("pca_eigen_vectors", "pca_means"):
        if key not in arrays:
            raise WeightsError(f"{source}: missing {missing.format(key=repr(key))}")
    ev, means = np.asarray(arrays["pca_eigen_vectors"]), np.asarray(arrays["pca_means"]).reshape(-1)
    if ev.shape != (128, 128) or means.shape != (128,):
        raise WeightsError(f"{source}: pca_eigen_vectors {ev.shape} / pca_means {means.shape}, "
                           f"expected (128, 128) / (128,)")
    try:
        return PCAParams(ev, means)
    except ValueError as e:  # NaN/inf: name the file
        raise WeightsError(f"{source}: {e}; download it again") from None


def read_pca(path: str) -> PCAParams:
    """PCA params from TF's .npz or torchvggish's .pth, whichever `path` holds (a flag's name does not
    decide it: both are the same numbers); any other file is refused naming it."""
    found = require(path, ("npz", "torch"), "a VGGish PCA file",
                    "pass vggish_pca_params.npz (TF) or vggish_pca_params-970ea276.pth (torchvggish)")
    return load_pca_npz(path) if found == "npz" else pca_from_state_dict(load_pth(path), path)


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
    require(path, ("torch",), "a PyTorch .pth file", "pass torchvggish's vggish-10086976.pth / "
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
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")[:200]
        raise WeightsError(f"{path}: not a readable PyTorch state dict ({type(e).__name__}: "
                           f"{first}); the file is truncated or corrupt, download it again") from e
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


def params_from_state_dict(state: dict[str, np.ndarray], source: str = "state dict") -> dict:
    """torchvggish state dict -> our layout (OIHW -> HWIO, [out, in] -> [in, out]), checked by params.validate
    naming the torch tensors. Keys that are not VGGish tensors are refused."""
    def get(layer, part):
        key = f"{NAMES[layer][0]}.{TORCH_PART[part]}"
        if key not in state:
            raise WeightsError(f"{source}: missing tensor {key!r}; is this a torchvggish VGGish state dict?")
        w = np.asarray(state[key], np.float32)
        if part == "bias":
            return w
        conv = layer.startswith("conv")
        if w.ndim != (4 if conv else 2):
            raise WeightsError(f"{source}: tensor {key} has shape {w.shape}, expected "
                               f"{'a 4-d OIHW kernel' if conv else '2-d [out, in]'}")
        return np.transpose(w, (2, 3, 1, 0)) if conv else np.ascontiguousarray(w.T)

    params = {layer: {part: get(layer, part) for part in TORCH_PART} for layer in NAMES}
    extra = sorted(set(state) - {f"{key}.{p}" for key, _ in NAMES.values() for p in TORCH_PART.values()})
    if extra:
        raise WeightsError(f"{source}: unexpected keys {extra}, not VGGish tensors; pass a torchvggish VGGish "
                           f"state dict (features.*, embeddings.*) such as vggish-10086976.pth")
    params_lib.validate(params, source, name_of=lambda layer, k: f"{NAMES[layer][0]}.{TORCH_PART[k]}")
    return params


def pca_from_state_dict(state: dict[str, np.ndarray], source: str = "PCA file") -> PCAParams:
    return pca(state, source, "tensor {key}; is this torchvggish's vggish_pca_params file?")


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All variables of a TF checkpoint (V1 single file or V2 prefix) as numpy arrays."""
    path = os.fspath(path)
    try:
        import tensorflow as tf
    except ImportError as e:
        raise WeightsError(f"{path}: reading TF checkpoints needs TensorFlow; pip install 'vggish-jax[tf]', "
                           f"or convert torchvggish's .pth instead (--torch-weights)") from e
    try:
        reader = tf.train.load_checkpoint(path)
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    except Exception as e:
        raise WeightsError(f"{path}: not a readable TF checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]}); the file is truncated or corrupt") from e


def params_from_variables(variables: dict[str, np.ndarray], source: str = "checkpoint") -> dict:
    """TF-slim variables -> our layout, checked by params.validate (naming the TF variables)."""
    def tf_name(layer, part):
        return f"vggish/{NAMES[layer][1]}/{TF_PART[part]}"

    params: dict = {}
    for layer in NAMES:
        for part in TF_PART:
            if tf_name(layer, part) not in variables:
                raise WeightsError(f"{source}: missing variable {tf_name(layer, part)!r}; is this the VGGish TF-slim "
                                   f"checkpoint?")
            params.setdefault(layer, {})[part] = np.asarray(variables[tf_name(layer, part)], np.float32)
    params_lib.validate(params, source, name_of=tf_name)
    return params


def load_pca_npz(path: str | os.PathLike) -> PCAParams:
    """vggish_pca_params.npz -> PCAParams. Loaded with allow_pickle=False: pickled objects are refused, never run."""
    path = os.fspath(path)
    require(path, ("npz",), "a NumPy .npz archive", "pass TF's vggish_pca_params.npz "
            "(or torchvggish's vggish_pca_params-970ea276.pth, also as --pca)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        if isinstance(e, ValueError) and "allow_pickle" in str(e):
            raise WeightsError(f"{path}: refused: this file contains pickled Python objects, not plain arrays, so "
                               f"loading it could run code; it is not vggish_pca_params.npz as published") from e
        raise WeightsError(f"{path}: not a readable .npz ({type(e).__name__}); download it again") from e
    return pca(arrays, path, "array {key}; expected vggish_pca_params.npz (pca_eigen_vectors, pca_means)")


CACHE_ENV = "VGGISH_JAX_CACHE"


@dataclasses.dataclass(frozen=True)
class Published:
    name: str
    url: str
    sha256_prefix: str | None  # None: not known, only recorded


TORCH_BASE = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/"
TF_BASE = "https://storage.googleapis.com/audioset/"
FILES = {
    "torch_weights": Published("vggish-10086976.pth", TORCH_BASE + "vggish-10086976.pth", "10086976"),
    "torch_pca": Published("vggish_pca_params-970ea276.pth", TORCH_BASE + "vggish_pca_params-970ea276.pth", "970ea276"),
    "tf_checkpoint": Published("vggish_model.ckpt", TF_BASE + "vggish_model.ckpt", None),
    "tf_pca": Published("vggish_pca_params.npz", TF_BASE + "vggish_pca_params.npz", None),
}


def cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "vggish-jax")


def sha256(path: str) -> str:
    return download.digest(path, "sha256")


def verify(path: str, expected_prefix: str | None) -> str:
    """SHA-256 of `path`; raises WeightsError if it does not start with `expected_prefix`."""
    digest = sha256(path)
    if expected_prefix and not digest.startswith(expected_prefix):
        raise WeightsError(f"{path}: SHA-256 {digest[:16]}... does not start with {expected_prefix} as published; "
                           f"the download is corrupt or not the official file, delete it and retry")
    return digest


def fetch(key: str, directory: str | None = None, timeout: float = 30.0) -> str:
    """Path of the published file `key` in the cache, downloading it if absent. Verified either way."""
    spec = FILES[key]
    directory = directory or cache_dir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, spec.name)
    if not os.path.exists(path):
        try:
            download.fetch_url(spec.url, path, timeout=timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise WeightsError(
                f"cannot download {spec.url} ({reason}); with no network, fetch {spec.name} on a machine with "
                f"internet, copy it here and pass it with --torch-weights or --tf-checkpoint (a PCA file with "
                f"--pca)") from e
    try:
        verify(path, spec.sha256_prefix)
    except WeightsError:
        os.replace(path, path + ".bad")  # keep it for inspection, but never reuse it
        raise
    return path
