"""What a file given to `convert` is, from its first bytes, so a wrong file is named as what it is.
torch.load and np.load report a text file as a pickling error, which reads as a corrupt or malicious download.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.postprocess import PCAParams

_PICKLE = b"\x80"  # pickle protocol 2+ (torch's legacy serialisation starts with one)
_ZIP = b"PK\x03\x04"
_NPY = b"\x93NUMPY"


def kind(path: str | os.PathLike) -> str:
    """'npz', 'torch' (legacy pickle or zip archive), 'npy', 'empty', 'text' or 'unknown'."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "empty"
    if head.startswith(_NPY):
        return "npy"
    if head.startswith(_PICKLE):
        return "torch"
    if head.startswith(_ZIP):
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


_DESCRIBE = {"npz": "a NumPy .npz archive", "torch": "a PyTorch file", "npy": "a single NumPy .npy array",
             "empty": "empty", "text": "a text file (CSV or similar)", "unknown": "of an unknown format"}


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
        raise WeightsError(f"{source}: pca_eigen_vectors {ev.shape} / pca_means {means.shape}, expected (128, 128) / (128,)")
    try:
        return PCAParams(ev, means)
    except ValueError as e:  # NaN/inf: name the file
        raise WeightsError(f"{source}: {e}; download it again") from None
