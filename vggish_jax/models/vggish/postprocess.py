"""The reference embedding postprocessor: PCA whitening, clip to [-2, 2], quantise to uint8.

Matches the TF reference by default: after scaling to 0..255 it truncates (numpy astype(uint8)).
torchvggish rounds instead; `rounding='round'` reproduces that.
"""
from __future__ import annotations

import dataclasses

import numpy as np

QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0


@dataclasses.dataclass(frozen=True)
class PCAParams:
    eigen_vectors: np.ndarray  # [128, 128]; rows are components
    means: np.ndarray  # [128]

    def __post_init__(self):
        ev = np.asarray(self.eigen_vectors, np.float64)
        mu = np.asarray(self.means, np.float64).reshape(-1)
        if ev.ndim != 2 or ev.shape[1] != mu.shape[0]:
            raise ValueError(f"PCA params: eigen_vectors {ev.shape} do not fit means {mu.shape}")
        if not (np.all(np.isfinite(ev)) and np.all(np.isfinite(mu))):
            raise ValueError("PCA params contain NaN/inf; the PCA file is corrupt")
        object.__setattr__(self, "eigen_vectors", ev)
        object.__setattr__(self, "means", mu)


def pca(embeddings: np.ndarray, params: PCAParams) -> np.ndarray:
    """[n, 128] -> [n, 128] float: eigen_vectors @ (x - means)."""
    return (np.asarray(embeddings, np.float64) - params.means) @ params.eigen_vectors.T


def quantize(x: np.ndarray, rounding: str = "truncate") -> np.ndarray:
    """Clip to [-2, 2] and map linearly to 0..255 as uint8."""
    scaled = (np.clip(x, QUANTIZE_MIN, QUANTIZE_MAX) - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))
    if rounding == "round":
        scaled = np.round(scaled)
    elif rounding != "truncate":
        raise ValueError(f"rounding must be 'truncate' (TF) or 'round' (torchvggish), got {rounding!r}")
    return scaled.astype(np.uint8)


def postprocess(embeddings: np.ndarray, params: PCAParams, rounding: str = "truncate") -> np.ndarray:
    return quantize(pca(embeddings, params), rounding)
