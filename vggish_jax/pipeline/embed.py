"""Audio files -> VGGish embeddings through the one device function (vggish_jax.pipeline.device).

The host only decodes and resamples (`pipeline.host.load_clip`, in background threads); the device runs the
jitted frontend + VGGish on fixed-shape, bucketed batches sharded over every device. `embed_examples` takes
stored log-mels instead (same sharding). `file_examples` (NumPy-oracle log-mels of a file) lives in
`pipeline.host` and is re-exported here.
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import os
from typing import Callable, Iterable, Iterator

import jax.numpy as jnp
import numpy as np

from vggish_jax import audio, compilation_cache
from vggish_jax.datasets import decode
from vggish_jax.models.vggish import pretrained, frontend, params as params_lib, postprocess as post
from vggish_jax.pipeline.device import AudioEmbedder
from vggish_jax.pipeline.host import file_examples, load_clip, load_clip_or_error  # noqa: F401  (re-exported)
from vggish_jax.spec import EmbeddingSpec, params_sha256

BAD_INPUT = (audio.AudioError, frontend.TooShortError)  # reported per file; anything else is a bug and raises


class Embedder:
    """A loaded VGGish with its PCA params; turns files, waveforms or log-mel examples into embeddings.

    `precision` and `formulation` choose the device frontend (see models.vggish.frontend_jax): float32 is
    within 1e-3 of the NumPy oracle in log-mel, float64 within 1e-5. `batch_size` is about how many
    examples go through the model per call; `mesh` defaults to every device.
    """

    def __init__(self, params: dict, *, pca: post.PCAParams | None = None, final_relu: bool = False,
                 dtype=jnp.float32, batch_size: int = 64, metadata: dict | None = None, source: str = "params",
                 precision: str = "float32", formulation: str = "auto", mesh=None):
        compilation_cache.enable()
        self.model = params_lib.build(params, final_relu=final_relu, dtype=dtype, source=source)
        self.pca, self.final_relu, self.batch_size = pca, final_relu, batch_size
        self.dtype = jnp.dtype(dtype)
        self.metadata = dict(metadata or {})
        self.device = AudioEmbedder(self.model, precision=precision, formulation=formulation, mesh=mesh,
                                    examples_per_call=batch_size)

    @property
    def spec(self) -> EmbeddingSpec:
        """How this Embedder's raw embeddings are made; `.replace(postprocess=True)` for its uint8 output."""
        sha = self.metadata.get("weights_sha256")
        if sha is None:  # built from in-memory params: hash what the model holds
            sha = self.metadata["weights_sha256"] = params_sha256(params_lib.to_dict(self.model))
        return EmbeddingSpec.create(weights_sha256=sha, final_relu=self.final_relu, dtype=str(self.dtype),
                                    frontend=frontend.DEFAULT)

    def embed_examples(self, examples: np.ndarray) -> np.ndarray:
        """[n, 96, 64] log-mel -> [n, 128] float32 raw embeddings (sharded fixed-size batches)."""
        return self.device.embed_examples(examples, self.batch_size)

    def embed_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """One 16 kHz mono waveform (at least 0.975 s) -> [n, 128] float32 raw embeddings."""
        return self.device.embed_waveform(np.asarray(waveform))

    def postprocess(self, embeddings: np.ndarray, rounding: str = "truncate") -> np.ndarray:
        if self.pca is None:
            raise params_lib.WeightsError(
                "these weights have no PCA params; convert with --torch-pca/--tf-pca to enable --postprocess")
        return post.postprocess(embeddings, self.pca, rounding)

    def embed_file(self, path, *, postprocess: bool = False, pad: bool = False) -> np.ndarray:
        """One file -> [n, 128]; bad input raises (audio.AudioError, frontend.TooShortError)."""
        emb = self.embed_waveform(load_clip(path, pad=pad))
        return self.postprocess(emb) if postprocess else emb

    def iter_files(self, paths: Iterable[str | os.PathLike], *, pad: bool = False, workers: int = 2,
                   postprocess: bool = False, processes: bool = False) -> Iterator[tuple[str, np.ndarray | str]]:
        """Yield (path, [n, 128] embeddings or a one-line error) per file, in input order, each as soon as
        it is done. Files are decoded up to 2 * `workers` ahead in background threads (or spawned processes
        with `processes=True`; they import no jax) while the device embeds."""
        if postprocess and self.pca is None:
            self.postprocess(np.zeros((0, 128), np.float32))  # raises the clear no-PCA error up front
        for path, value in self._iter(paths, pad, workers, processes):
            if isinstance(value, Exception):
                yield path, str(value)
            else:
                yield path, self.postprocess(value) if postprocess else value

    def _iter(self, paths, pad: bool, workers: int, processes: bool = False) -> Iterator[tuple[str, object]]:
        decoded = _prefetch((os.fspath(p) for p in paths), functools.partial(load_clip_or_error, pad=pad), workers,
                            processes)
        return self.device.embed_stream(_raise_unexpected(decoded))

    def embed_files(self, paths: Iterable[str], *, postprocess: bool = False, pad: bool = False,
                    workers: int = 2, on_error: str = "skip", processes: bool = False,
                    progress: Callable[[int], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Embed many files. Returns ({path: [n, 128]}, {path: error}) in input order (a thin wrapper over
        `iter_files`). With on_error='raise' the first unreadable or too-short file raises instead."""
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if postprocess and self.pca is None:
            self.postprocess(np.zeros((0, 128), np.float32))
        results: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        for path, value in self._iter(paths, pad, workers, processes):
            if isinstance(value, Exception):
                if on_error == "raise":
                    raise value
                errors[path] = str(value)
            else:
                results[path] = self.postprocess(value) if postprocess else value
            if progress:
                progress(1)
        return results, errors


def _raise_unexpected(items: Iterator[tuple[str, object]]) -> Iterator[tuple[str, object]]:
    for path, value in items:
        if isinstance(value, Exception) and not isinstance(value, BAD_INPUT):
            raise value
        yield path, value


def fixed_batches(x: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(batch zero-padded to batch_size, number of real rows) over x, so a jitted model sees one shape."""
    for i in range(0, x.shape[0], batch_size):
        batch = x[i: i + batch_size]
        k = batch.shape[0]
        if k < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - k,) + batch.shape[1:], batch.dtype)])
        yield batch, k


def _prefetch(items: Iterable, fn: Callable, workers: int, processes: bool = False) -> Iterator[tuple]:
    """Yield (item, fn(item)) in order, up to 2 * workers ahead, in threads or in spawned worker processes
    (jax-free, and they die with this process: datasets.decode.process_pool)."""
    items, workers = list(items), max(1, workers)
    with decode.process_pool(workers) if processes else cf.ThreadPoolExecutor(workers) as pool:
        yield from zip(items, decode.ordered_map(fn, items, pool, 2 * workers))


def load_pretrained(directory: str | os.PathLike, *, final_relu: bool | None = None, dtype: str = "float32",
                    batch_size: int = 64, precision: str = "float32", formulation: str = "auto",
                    mesh=None) -> Embedder:
    """An Embedder from a weights directory written by `vggish-jax convert` (or `pretrained.save`)."""
    p, pca, meta = pretrained.load(directory)
    if meta.get("model", "vggish") != "vggish":
        raise params_lib.WeightsError(f"{directory}: holds {meta['model']} weights, not VGGish")
    return Embedder(p, pca=pca, final_relu=pretrained.final_relu_of(meta, final_relu), dtype=jnp.dtype(dtype), batch_size=batch_size,
                    metadata=meta, source=os.fspath(directory), precision=precision, formulation=formulation,
                    mesh=mesh)


def embed_file(path, *, weights, postprocess: bool = False, pad: bool = False, **load_kwargs) -> np.ndarray:
    """One file -> [n, 128] embeddings. `weights` is a weights directory or an Embedder."""
    emb = weights if isinstance(weights, Embedder) else load_pretrained(weights, **load_kwargs)
    return emb.embed_file(path, postprocess=postprocess, pad=pad)


def embed_files(paths, *, weights, postprocess: bool = False, pad: bool = False, batch_size: int = 64,
                workers: int = 2, on_error: str = "skip", **load_kwargs):
    """Many files -> ({path: [n, 128]}, {path: error}). `weights` is a weights directory or an Embedder."""
    emb = weights if isinstance(weights, Embedder) else load_pretrained(weights, batch_size=batch_size, **load_kwargs)
    return emb.embed_files(paths, postprocess=postprocess, pad=pad, workers=workers, on_error=on_error)
