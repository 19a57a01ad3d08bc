"""FAD's numerics: Gaussian statistics of embedding frames and their file, the Fréchet distance between two,
    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))       (Dowson & Landau 1982),
per-file distances to REF (fadtk's score_individual) and FAD-infinity with a bootstrap CI (Gui et al., ICASSP
2024, after Chong & Forsyth). Why each choice, with measurements: docs/fad.md ("Numerics", "Beyond one number").

tr((S1 S2)^(1/2)) by default from the eigenvalues of the PSD S1^(1/2) S2 S1^(1/2) (similar to S1 S2): real and
exact for rank-deficient covariances, where scipy's sqrtm of the non-symmetric product (fad_utils, pytorch-fid,
frechet-audio-distance; method="sqrtm") can give non-finite values and imaginary parts; negative eigenvalues
from rounding are clipped and reported as `imag`. Statistics: all frames of all files, unbiased covariance,
float64, as the other tools. File: one .npz (no pickle): mean, cov, count, num_files, `meta` (JSON).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable

import numpy as np
from threadpoolctl import threadpool_limits  # comes with scikit-learn

from vggish_jax import atomic, spec as spec_lib
from vggish_jax.models.vggish import frontend

METHODS = ("eigh", "sqrtm")
FORMAT = "vggish-jax fad stats 1"


class FrechetError(ValueError):
    """Inputs cannot be compared (shapes, non-finite values) or the square root failed."""


class StatsError(ValueError):
    """A statistics file is unreadable, or statistics cannot be formed (fewer than 2 frames)."""


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


@dataclasses.dataclass
class Stats:
    mean: np.ndarray  # [d] float64
    cov: np.ndarray  # [d, d] float64, unbiased
    count: int  # frames
    num_files: int
    spec: spec_lib.EmbeddingSpec | None = None
    meta: dict = dataclasses.field(default_factory=dict)  # convention, source description, ...


def from_frames(frames: Iterable[np.ndarray], spec=None, meta=None) -> Stats:
    """Statistics over all frames of [n, d] blocks (one per file), in float64."""
    blocks = [np.asarray(f) for f in frames]
    bad = [x.shape for x in blocks if x.ndim != 2 or x.shape[0] == 0 or x.shape[1:] != blocks[0].shape[1:]]
    if bad:
        raise StatsError(f"expected [frames, dim] blocks of one dim with at least one frame each, got shape "
                         f"{bad[0]} (first block {blocks[0].shape})")
    n = sum(x.shape[0] for x in blocks)
    if n < 2:
        raise StatsError(f"{n} embedding frame{'s' if n != 1 else ''} (each {frontend.example_hop_seconds():.2f} s "
                         f"of audio), but a covariance needs at least 2 and a stable FAD far more than the "
                         f"embedding size (128); give more audio")
    x = np.concatenate(blocks, dtype=np.float64)
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    return Stats(x.mean(axis=0), _sym(cov), n, len(blocks), spec, dict(meta or {}))


def save(path: str | os.PathLike, stats: Stats) -> str:
    """Write `stats` to PATH (.npz appended if missing), atomically."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    meta = {"format": FORMAT, **stats.meta}
    if stats.spec is not None:
        meta[spec_lib.KEY] = stats.spec.to_dict()
    atomic.savez(path, mean=stats.mean, cov=stats.cov, count=np.int64(stats.count),
                 num_files=np.int64(stats.num_files), meta=np.array(json.dumps(meta, sort_keys=True)))
    return path


def is_stats_file(path: str | os.PathLike) -> bool:
    try:  # not a file, not an .npz: False
        with np.load(path, allow_pickle=False) as z:
            return {"mean", "cov", "count", "meta"} <= set(z.files)
    except Exception:
        return False


def load(path: str | os.PathLike) -> Stats:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such statistics file; make one with save_gen_stats = \"{path}\" in "
                                f"the --config file of a `vggish-jax fad` run")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta: dict[str, Any] = json.loads(str(z["meta"]))
            mean, cov = z["mean"].astype(np.float64), z["cov"].astype(np.float64)
            count, num_files = int(z["count"]), int(z["num_files"])
    except Exception as e:
        raise StatsError(f"{path}: not a readable FAD statistics file ({type(e).__name__}: {e}); recreate it "
                         f"(save_gen_stats in a fad --config file)") from e
    if meta.get("format") != FORMAT:
        raise StatsError(f"{path}: statistics format {meta.get('format')!r}, expected {FORMAT!r}; recreate it")
    if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise StatsError(f"{path}: mean {mean.shape} and covariance {cov.shape} do not match; recreate it")
    spec = spec_lib.read(meta, path) if spec_lib.KEY in meta else None
    meta.pop(spec_lib.KEY, None)
    return Stats(mean, cov, count, num_files, spec, meta)


def psd_sqrt(cov: np.ndarray) -> tuple[np.ndarray, float]:
    """(symmetric square root of a covariance, largest negative eigenvalue clipped to 0, as a positive number)."""
    w, v = np.linalg.eigh(_sym(np.asarray(cov, np.float64)))
    return (v * np.sqrt(_floor(w))) @ v.T, max(0.0, -float(w.min(initial=0.0)))


def trace_sqrt(root1: np.ndarray, cov2: np.ndarray) -> tuple[float, float]:
    """(tr sqrt(S1 S2) from root1 = S1^(1/2), the largest negative eigenvalue of S1^(1/2) S2 S1^(1/2) dropped)."""
    lam = np.linalg.eigvalsh(_sym(root1 @ cov2 @ root1))
    return float(np.sqrt(_floor(lam)).sum()), max(0.0, -float(lam.min(initial=0.0)))


def _floor(lam: np.ndarray) -> np.ndarray:
    """Eigenvalues below rounding level (d * eps * largest) set to 0: sqrt would turn 1e-16 noise into 1e-8."""
    tol = lam.size * np.finfo(np.float64).eps * float(np.abs(lam).max(initial=0.0))
    return np.where(lam > tol, lam, 0.0)


def frechet_distance(mu1, cov1, mu2, cov2, *, method: str = "eigh", eps: float = 1e-6,
                     max_imag: float = 1e-3) -> FrechetResult:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2) in float64: "eigh" (default) or "sqrtm", retried
    with `eps` on the diagonals if not finite; an imaginary part over `max_imag` (relative) raises FrechetError."""
    mu1, mu2 = _checked(mu1, "mu1"), _checked(mu2, "mu2")
    cov1, cov2 = _checked(cov1, "cov1", mu1.shape[0]), _checked(cov2, "cov2", mu2.shape[0])
    if mu1.shape != mu2.shape:
        raise FrechetError(f"means have different sizes: {mu1.shape[0]} vs {mu2.shape[0]}")
    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    if method == "eigh":
        root1, clipped1 = psd_sqrt(cov1)
        tr_sqrt, neg = trace_sqrt(root1, cov2)
        imag, used_eps = float(np.sqrt(max(neg, clipped1))), 0.0
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


# BLAS on one thread: many small (128 x 128) decompositions ran up to 20x slower with two OpenBLAS threads on
# this project's busy 2-core machine (eigvalsh: 20 ms vs 1.1 ms on one thread).
one_blas_thread = threadpool_limits.wrap(limits=1, user_api="blas")


@one_blas_thread
def per_file_scores(ref: Stats, files: dict[str, np.ndarray]) -> list[dict]:
    """[{file, fad, frames}] for every file, worst (largest distance) first; files with < 2 frames get fad None."""
    root, _ = psd_sqrt(ref.cov)
    tr_ref = float(np.trace(ref.cov))
    out = []
    for name, e in files.items():
        k = e.shape[0]
        if k < 2:
            out.append({"file": name, "fad": None, "frames": k, "reason": "fewer than 2 frames: no covariance"})
        else:
            fad = _fd_to_ref(np.asarray(e, np.float64), ref.mean, root, tr_ref)
            out.append({"file": name, "fad": fad, "frames": k})
    return sorted(out, key=lambda r: (r["fad"] is None, -(r["fad"] or 0.0)))


def fit_inverse_n(ns, fads) -> tuple[float, float, float]:
    """(intercept, slope, r2) of the least-squares line fad = intercept + slope / n."""
    x = 1.0 / np.asarray(ns, np.float64)
    y = np.asarray(fads, np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss if ss > 0 else 1.0
    return float(intercept), float(slope), r2


@one_blas_thread
def fad_inf(ref: Stats, files: list[np.ndarray], *, steps: int = 10, min_n: int | None = None,
            bootstrap: int = 100, ci_level: float = 0.95, seed: int = 0, replace: bool = False,
            progress=None) -> dict:
    """FAD-infinity of GEN frames (grouped per file) against REF statistics, with a bootstrap CI over files:
    {value (the intercept: FAD at infinitely many frames), slope (c in FAD(N) = value + c / N), r2, points
    [{n, fad}] of the fit on the actual GEN set, ci (value +- z * se), se (bootstrap standard error), and the
    settings}."""
    rng, progress = np.random.default_rng(seed), progress or (lambda k: None)
    root, _ = psd_sqrt(ref.cov)
    tr_ref = float(np.trace(ref.cov))
    files = [np.asarray(f, np.float64) for f in files]
    pooled = np.concatenate(files)
    total = pooled.shape[0]
    if total < 4:
        raise ValueError(f"FAD-inf needs at least 4 GEN frames, got {total}")
    # `steps` sizes from min_n to all frames (fadtk: 500 frames up; here at most a quarter of the frames)
    min_n = min(500, max(2, total // 4)) if min_n is None else max(2, min(int(min_n), total))
    ns = sorted({int(n) for n in np.linspace(min_n, total, max(2, steps))})

    def curve(frames: np.ndarray, sizes=ns) -> list[float]:
        return [_fd_to_ref(frames[rng.choice(frames.shape[0], n, replace=replace)], ref.mean, root, tr_ref)
                for n in sizes]

    fads = curve(pooled)
    value, slope, r2 = fit_inverse_n(ns, fads)
    progress(1)
    ci = se = None
    if bootstrap > 1 and len(files) > 1:
        reps = []
        for _ in range(bootstrap):
            frames = np.concatenate([files[i] for i in rng.integers(0, len(files), len(files))])
            # files differ in length, so a replicate has more or fewer frames: same fractions of it
            ns_b = [max(2, min(frames.shape[0], round(n * frames.shape[0] / pooled.shape[0]))) for n in ns]
            reps.append(fit_inverse_n(ns_b, curve(frames, ns_b))[0])
            progress(1)
        from scipy import stats

        se = float(np.std(reps, ddof=1))
        z = float(stats.norm.ppf(0.5 + ci_level / 2.0))
        ci = [value - z * se, value + z * se]
    return {"value": value, "slope": slope, "r2": r2, "points": [{"n": n, "fad": f} for n, f in zip(ns, fads)],
            "ci": ci, "se": se, "ci_level": ci_level, "bootstrap": bootstrap, "seed": seed, "replace": replace}


def _fd_to_ref(x: np.ndarray, mu_ref: np.ndarray, root_ref: np.ndarray, tr_ref: float) -> float:
    """Fréchet distance of the frames x (n x d) to N(mu_ref, R^2): an SVD when n <= d, else the d x d form."""
    n, d = x.shape
    mu = x.mean(axis=0)
    xc = (x - mu) / np.sqrt(n - 1)
    if n <= d:
        tr_sqrt = float(np.linalg.svd(xc @ root_ref, compute_uv=False).sum())
        tr_gen = float((xc * xc).sum())
    else:  # one n x d x d product, then d x d work
        c = xc.T @ xc
        tr_sqrt, tr_gen = trace_sqrt(root_ref, c)[0], float(np.trace(c))
    diff = mu - mu_ref
    return float(diff @ diff + tr_ref + tr_gen - 2.0 * tr_sqrt)


def _trace_sqrtm(cov1, cov2, eps, max_imag) -> tuple[float, float, float]:
    from scipy import linalg

    for used in (0.0, eps):  # retried with eps on the diagonals, as the tools do
        off = np.eye(cov1.shape[0]) * used
        root = linalg.sqrtm((cov1 + off) @ (cov2 + off))
        if np.all(np.isfinite(root)):
            break
    else:
        raise FrechetError("scipy sqrtm of the covariance product is not finite even with eps on the diagonal; "
                           "use method='eigh'")
    imag = float(np.abs(np.imag(root)).max()) if np.iscomplexobj(root) else 0.0
    if imag > max_imag * max(1.0, float(np.abs(root).max())):
        raise FrechetError(f"sqrtm of the covariance product has imaginary parts up to {imag:.3g}; the covariances "
                           f"are badly conditioned; use method='eigh'")
    return float(np.trace(np.real(root))), imag, used


def _sym(m: np.ndarray) -> np.ndarray:
    return 0.5 * (m + m.T)


def _checked(x, name: str, d: int | None = None) -> np.ndarray:
    """x as float64: a finite vector, or a finite d x d matrix when d is given."""
    x = np.asarray(x, np.float64)
    if (x.ndim != 1) if d is None else (x.shape != (d, d)):
        raise FrechetError(f"{name} must be {'a vector' if d is None else f'{d}x{d}'}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise FrechetError(f"{name} has NaN/inf entries")
    return x
