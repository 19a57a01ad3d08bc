"""Fréchet distance between two Gaussians, in float64, with a stable matrix square root.

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))       (Dowson & Landau 1982)

scipy's `sqrtm` of the non-symmetric S1 S2 (fad_utils, pytorch-fid, frechet-audio-distance; fadtk's eig) can
give non-finite values and rounding's imaginary parts. The default here is symmetric: S1 S2 is similar to the
PSD A = S1^(1/2) S2 S1^(1/2), so tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(A)), real and exact for rank-deficient
covariances; negative eigenvalues from rounding are clipped and reported as `imag`. "sqrtm" is the tools' route.
"""
from __future__ import annotations

import dataclasses

import numpy as np

METHODS = ("eigh", "sqrtm")


class FrechetError(ValueError):
    """Inputs cannot be compared (shapes, non-finite values) or the square root failed."""


@dataclasses.dataclass(frozen=True)
class FrechetResult:
    distance: float  # d^2, the FAD when the Gaussians are fitted to embeddings
    mean_term: float  # |mu1 - mu2|^2
    trace_term: float  # tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)
    trace_sqrt: float  # tr sqrt(S1 S2)
    imag: float  # size of what was dropped: largest |imaginary part| (sqrtm) or clipped negative root (eigh)
    method: str
    eps: float  # diagonal offset that had to be added (0 when none)
    clipped: float = 0.0  # how far below 0 rounding put the distance (it is reported as 0; d^2 >= 0 exactly)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def one_blas_thread(fn):
    """Run `fn` with BLAS on one thread. Many small (128 x 128) decompositions ran up to 20x slower with
    two OpenBLAS threads on this project's busy 2-core machine (eigvalsh: 20 ms vs 1.1 ms on one thread)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*a, **k):
        try:
            from threadpoolctl import threadpool_limits  # comes with scikit-learn
        except ImportError:
            return fn(*a, **k)
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*a, **k)

    return wrapper


def psd_sqrt(cov: np.ndarray) -> tuple[np.ndarray, float]:
    """(symmetric square root of a covariance, largest negative eigenvalue clipped to 0, as a positive number)."""
    cov = _sym(np.asarray(cov, np.float64))
    w, v = np.linalg.eigh(cov)
    clipped = float(max(0.0, -w.min())) if w.size else 0.0
    return (v * np.sqrt(_floor(w))) @ v.T, clipped


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray, *, root1: np.ndarray | None = None) -> tuple[float, float]:
    """(tr sqrt(S1 S2), negative-eigenvalue size dropped) via the symmetric form; pass `root1` to reuse S1^(1/2)."""
    clipped1 = 0.0
    if root1 is None:
        root1, clipped1 = psd_sqrt(cov1)
    a = _sym(root1 @ np.asarray(cov2, np.float64) @ root1)
    lam = np.linalg.eigvalsh(a)
    neg = float(max(0.0, -lam.min())) if lam.size else 0.0
    return float(np.sqrt(_floor(lam)).sum()), max(np.sqrt(neg), np.sqrt(clipped1))


def _floor(lam: np.ndarray) -> np.ndarray:
    """Eigenvalues below rounding level (d * eps * largest) set to 0: sqrt would turn 1e-16 noise into 1e-8."""
    if lam.size == 0:
        return lam
    tol = lam.size * np.finfo(np.float64).eps * float(np.abs(lam).max())
    return np.where(lam > tol, lam, 0.0)


def frechet_distance(mu1, cov1, mu2, cov2, *, method: str = "eigh", eps: float = 1e-6,
                     max_imag: float = 1e-3) -> FrechetResult:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2) in float64: "eigh" (default) or "sqrtm", retried
    with `eps` on the diagonals if not finite; an imaginary part over `max_imag` (relative) raises FrechetError."""
    mu1, mu2 = _vec(mu1, "mu1"), _vec(mu2, "mu2")
    cov1, cov2 = _mat(cov1, mu1.shape[0], "cov1"), _mat(cov2, mu2.shape[0], "cov2")
    if mu1.shape != mu2.shape:
        raise FrechetError(f"means have different sizes: {mu1.shape[0]} vs {mu2.shape[0]}")
    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    used_eps = 0.0
    if method == "eigh":
        tr_sqrt, imag = trace_sqrt_product(cov1, cov2)
    elif method == "sqrtm":
        tr_sqrt, imag, used_eps = _trace_sqrtm(cov1, cov2, eps, max_imag)
    else:
        raise FrechetError(f"unknown method {method!r}; choose from {METHODS}")
    trace_term = float(np.trace(cov1) + np.trace(cov2) - 2.0 * tr_sqrt)
    d = mean_term + trace_term
    # d is a difference of traces of size tr(S1) + tr(S2): within that many ulps of 0 it is rounding, either sign
    noise = mu1.shape[0] * np.finfo(np.float64).eps * float(np.trace(cov1) + np.trace(cov2))
    distance = 0.0 if abs(d) <= noise else max(d, 0.0)
    return FrechetResult(distance, mean_term, trace_term, tr_sqrt, imag, method, used_eps, max(-d, 0.0))


def _trace_sqrtm(cov1, cov2, eps, max_imag) -> tuple[float, float, float]:
    from scipy import linalg

    used = 0.0
    root = linalg.sqrtm(cov1 @ cov2)
    if not np.all(np.isfinite(root)):
        used = eps
        off = np.eye(cov1.shape[0]) * eps
        root = linalg.sqrtm((cov1 + off) @ (cov2 + off))
    if not np.all(np.isfinite(root)):
        raise FrechetError("scipy sqrtm of the covariance product is not finite even with eps on the diagonal; "
                           "use method='eigh'")
    imag = float(np.abs(np.imag(root)).max()) if np.iscomplexobj(root) else 0.0
    scale = max(1.0, float(np.abs(root).max()))
    if imag > max_imag * scale:
        raise FrechetError(f"sqrtm of the covariance product has imaginary parts up to {imag:.3g}; the covariances "
                           f"are badly conditioned; use method='eigh'")
    return float(np.trace(np.real(root))), imag, used


def _sym(m: np.ndarray) -> np.ndarray:
    return 0.5 * (m + m.T)


def _vec(x, name) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 1:
        raise FrechetError(f"{name} must be a vector, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FrechetError(f"{name} has NaN/inf entries")
    return x


def _mat(x, d, name) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.shape != (d, d):
        raise FrechetError(f"{name} must be {d}x{d}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FrechetError(f"{name} has NaN/inf entries")
    return x
