"""Frame-level Gaussian statistics of a set of embeddings, and their file format.

Over all frames of all files, unbiased covariance (n - 1) as google-research, frechet-audio-distance and fadtk;
float64 with Chan et al.'s pairwise merge (no sum(x x^T) - n m m^T cancellation). File: one .npz (no pickle),
mean [d], cov [d, d], count, num_files, and `meta` (JSON: "embedding_spec", convention, origin).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable

import numpy as np

from vggish_jax import atomic, spec as spec_lib
from vggish_jax.fad.frechet import one_blas_thread
from vggish_jax.models.vggish import frontend

FORMAT = "vggish-jax fad stats 1"


class StatsError(ValueError):
    """A statistics file is unreadable, or statistics cannot be formed (fewer than 2 frames)."""


@dataclasses.dataclass
class Stats:
    mean: np.ndarray  # [d] float64
    cov: np.ndarray  # [d, d] float64, unbiased
    count: int  # frames
    num_files: int
    spec: spec_lib.EmbeddingSpec | None = None
    meta: dict = dataclasses.field(default_factory=dict)  # convention, source description, ...


class Accumulator:
    """Streaming mean and covariance over [n, d] blocks (e.g. one per file), in float64."""

    def __init__(self):
        self.n, self.mean, self.m2, self.files = 0, None, None, 0

    def add(self, frames: np.ndarray) -> None:
        x = np.asarray(frames, np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise StatsError(f"expected [frames, dim] with at least one frame, got shape {x.shape}")
        nb, mb = x.shape[0], x.mean(axis=0)
        xc = x - mb
        m2b = xc.T @ xc
        self.files += 1
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        if mb.shape != self.mean.shape:
            raise StatsError(f"embedding size changed from {self.mean.shape[0]} to {mb.shape[0]}")
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + np.outer(delta, delta) * (self.n * nb / n)
        self.n = n

    def stats(self, spec: spec_lib.EmbeddingSpec | None = None, meta: dict | None = None) -> Stats:
        if self.n < 2:
            hop = frontend.example_hop_seconds()
            raise StatsError(f"{self.n} embedding frame{'s' if self.n != 1 else ''} (each {hop:.2f} s of audio), but a "
                             f"covariance needs at least 2 and a stable FAD far more than the embedding size "
                             f"(128); give more audio")
        cov = self.m2 / (self.n - 1)
        return Stats(self.mean.copy(), 0.5 * (cov + cov.T), self.n, self.files, spec, dict(meta or {}))


@one_blas_thread
def from_frames(frames: Iterable[np.ndarray], spec=None, meta=None) -> Stats:
    acc = Accumulator()
    for f in frames:
        acc.add(f)
    return acc.stats(spec, meta)


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
    path = os.fspath(path)
    if not (path.endswith(".npz") and os.path.isfile(path)):
        return False
    try:
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
