"""Clip-level feature vectors from frame-level VGGish embeddings or log-mels; `mfcc_stats` is FMA's feature set
(mean, std, min, max, median, skewness, kurtosis of 20 MFCCs per 10 ms frame)."""
from __future__ import annotations

import numpy as np
from scipy import fft, stats

from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import segments

EXAMPLES_PER_CLIP = frontend.EXAMPLES_PER_CLIP  # 30-s clips: 31


def flatten(clips: list[np.ndarray], n: int = EXAMPLES_PER_CLIP) -> np.ndarray:
    """[clips, n * D]: the first n examples of each clip, cyclically repeated when it has fewer (no zeros for a
    scaler to turn into outliers)."""
    return np.stack([segments.cyclic(np.asarray(e, np.float32), n).reshape(-1) for e in clips])


def mean_std(clips: list[np.ndarray]) -> np.ndarray:
    """[clips, 2 * D]: per-dimension mean and standard deviation over a clip's examples."""
    return np.stack([np.concatenate([e.mean(axis=0), e.std(axis=0)]) for e in
                     (np.asarray(c, np.float32) for c in clips)])


def mfcc(log_mel: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """[..., bands] log-mel -> [..., n_mfcc] MFCCs (orthonormal DCT-II over bands)."""
    return fft.dct(np.asarray(log_mel, np.float64), type=2, norm="ortho", axis=-1)[..., :n_mfcc]


def mfcc_stats(mel_examples: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """[n, 96, 64] log-mel examples of one clip -> [7 * n_mfcc] summary statistics of its MFCCs."""
    m = mfcc(np.asarray(mel_examples).reshape(-1, np.shape(mel_examples)[-1]), n_mfcc)
    return np.concatenate([m.mean(0), m.std(0), m.min(0), m.max(0), np.median(m, 0),
                           stats.skew(m, axis=0), stats.kurtosis(m, axis=0)]).astype(np.float32)
