"""Fetch the published VGGish files into a cache directory and verify their SHA-256.
torchvggish's file names carry their SHA-256's first 8 hex digits (checked); no full hash is hard-coded (none
could be confirmed offline), but metadata.json records the SHA-256 of every file read.
"""
from __future__ import annotations

import dataclasses
import os
import urllib.error

from vggish_jax import download
from vggish_jax.models.vggish.params import WeightsError

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
