"""Audio files -> VGGish embeddings: stream-decode, log-mel, fixed-shape batches through one jitted model.

Every batch the model sees has the same shape ([batch_size, 96, 64], the last one zero-padded), so the
model is compiled once per Embedder and batch size, whatever the clip lengths.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vggish_jax import audio
from vggish_jax.models.vggish import pretrained, frontend, params as params_lib, postprocess as post
from vggish_jax.spec import EmbeddingSpec, params_sha256


def file_examples(path: str | os.PathLike, *, pad: bool = False, block_seconds: float = 60.0,
                  cfg: frontend.FrontendConfig = frontend.DEFAULT) -> np.ndarray:
    """[n, 96, 64] float32 log-mel examples of a file, decoded in blocks (exactly equal to decoding it whole)."""
    name = os.fspath(path)
    chunks, buf = [], np.zeros(0, np.float32)
    for block in audio.stream(path, cfg.sample_rate, block_seconds):
        buf = np.concatenate([buf, block])
        n = frontend.num_examples(buf.shape[0], cfg)
        if n:
            used = (n - 1) * cfg.example_hop_samples + cfg.example_samples
            chunks.append(frontend.waveform_to_examples(buf[:used], cfg.sample_rate, cfg=cfg, name=name))
            buf = buf[n * cfg.example_hop_samples:]
    if not chunks:
        buf = frontend.fit_to_examples(buf, pad=pad, cfg=cfg, name=name)
        chunks.append(frontend.waveform_to_examples(buf, cfg.sample_rate, cfg=cfg, name=name))
    return np.concatenate(chunks)


class Embedder:
    """A loaded VGGish with its PCA params; turns log-mel examples or files into embeddings."""

    def __init__(self, params: dict, *, pca: post.PCAParams | None = None, final_relu: bool = False,
                 dtype=jnp.float32, batch_size: int = 64, metadata: dict | None = None, source: str = "params"):
        self.model = params_lib.build(params, final_relu=final_relu, dtype=dtype, source=source)
        self.pca, self.final_relu, self.batch_size = pca, final_relu, batch_size
        self.dtype = jnp.dtype(dtype)
        self.metadata = dict(metadata or {})
        graphdef, state = nnx.split(self.model)
        self._state = state
        self._forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x).astype(jnp.float32))

    @property
    def spec(self) -> EmbeddingSpec:
        """How this Embedder's raw embeddings are made; `.replace(postprocess=True)` for its uint8 output."""
        sha = self.metadata.get("weights_sha256")
        if sha is None:  # built from in-memory params: hash what the model holds
            sha = self.metadata["weights_sha256"] = params_sha256(params_lib.to_dict(self.model))
        return EmbeddingSpec.create(weights_sha256=sha, final_relu=self.final_relu, dtype=str(self.dtype),
                                    frontend=frontend.DEFAULT)

    def embed_examples(self, examples: np.ndarray) -> np.ndarray:
        """[n, 96, 64] log-mel -> [n, 128] float32 raw embeddings."""
        examples = np.asarray(examples, np.float32)
        out = [np.asarray(self._forward(self._state, batch))[:k] for batch, k in fixed_batches(examples, self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)

    def postprocess(self, embeddings: np.ndarray, rounding: str = "truncate") -> np.ndarray:
        if self.pca is None:
            raise params_lib.WeightsError(
                "these weights have no PCA params; convert with --torch-pca/--tf-pca to enable --postprocess")
        return post.postprocess(embeddings, self.pca, rounding)

    def embed_file(self, path, *, postprocess: bool = False, pad: bool = False) -> np.ndarray:
        emb = self.embed_examples(file_examples(path, pad=pad))
        return self.postprocess(emb) if postprocess else emb

    def embed_files(self, paths: Iterable[str], *, postprocess: bool = False, pad: bool = False,
                    workers: int = 2, on_error: str = "skip",
                    progress: Callable[[int], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Embed many files, batching examples across files. Returns ({path: [n, 128]}, {path: error}).

        Decoding runs in `workers` threads ahead of the model. With on_error='skip' unreadable files are
        reported in the error dict; with 'raise' the first one raises.
        """
        paths = [os.fspath(p) for p in paths]
        batcher = _CrossFileBatcher(self.batch_size, lambda b: np.asarray(self._forward(self._state, b)))
        errors: dict[str, str] = {}
        for path, examples in _prefetch(paths, lambda p: file_examples(p, pad=pad), workers):
            if isinstance(examples, Exception):
                if on_error == "raise" or not isinstance(examples, (audio.AudioError, frontend.TooShortError)):
                    raise examples
                errors[path] = str(examples)
            else:
                batcher.add(path, examples)
            if progress:
                progress(1)
        results = batcher.finish()
        if postprocess:
            results = {p: self.postprocess(e) for p, e in results.items()}
        return {p: results[p] for p in paths if p in results}, errors


class _CrossFileBatcher:
    """Packs examples from consecutive files into full fixed-size batches; splits the outputs back per file."""

    def __init__(self, batch_size: int, run: Callable[[np.ndarray], np.ndarray]):
        self.batch_size, self.run = batch_size, run
        self.queue: list[tuple[str, np.ndarray]] = []  # files whose examples are not all embedded yet
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.outputs: list[np.ndarray] = []
        self.results: dict[str, np.ndarray] = {}

    def add(self, path: str, examples: np.ndarray) -> None:
        self.queue.append((path, examples))
        self.buffer.append(examples)
        self.buffered += examples.shape[0]
        while self.buffered >= self.batch_size:
            self._step(self.batch_size)

    def finish(self) -> dict[str, np.ndarray]:
        if self.buffered:
            self._step(self.buffered)
        return self.results

    def _step(self, k: int) -> None:
        stacked = np.concatenate(self.buffer)
        (batch, _), rest = next(fixed_batches(stacked[:k], self.batch_size)), stacked[k:]
        self.outputs.append(self.run(batch)[:k])
        self.buffer, self.buffered = [rest], rest.shape[0]
        done = np.concatenate(self.outputs)
        at = 0
        while self.queue and at + self.queue[0][1].shape[0] <= done.shape[0]:
            path, ex = self.queue.pop(0)
            self.results[path] = done[at: at + ex.shape[0]]
            at += ex.shape[0]
        self.outputs = [done[at:]]


def fixed_batches(x: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(batch zero-padded to batch_size, number of real rows) over x, so a jitted model sees one shape."""
    for i in range(0, x.shape[0], batch_size):
        batch = x[i: i + batch_size]
        k = batch.shape[0]
        if k < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - k,) + batch.shape[1:], batch.dtype)])
        yield batch, k


def _prefetch(items: list, fn: Callable, workers: int) -> Iterator[tuple]:
    """Yield (item, fn(item) or the exception it raised) in order, computing up to 2*workers ahead."""
    def safe(item):
        try:
            return fn(item)
        except Exception as e:  # reported per item by the caller
            return e

    with cf.ThreadPoolExecutor(max(1, workers)) as pool:
        futures: list[cf.Future] = []
        it = iter(items)
        for item in it:
            futures.append((item, pool.submit(safe, item)))
            if len(futures) >= 2 * max(1, workers):
                break
        while futures:
            item, fut = futures.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                futures.append((nxt, pool.submit(safe, nxt)))
            yield item, fut.result()


def load_pretrained(directory: str | os.PathLike, *, final_relu: bool | None = None, dtype: str = "float32",
                    batch_size: int = 64) -> Embedder:
    """An Embedder from a weights directory written by `vggish-jax convert` (or `pretrained.save`)."""
    p, pca, meta = pretrained.load(directory)
    if meta.get("model", "vggish") != "vggish":
        raise params_lib.WeightsError(f"{directory}: holds {meta['model']} weights, not VGGish")
    if final_relu is None:
        final_relu = bool(meta.get("final_relu", False))
    return Embedder(p, pca=pca, final_relu=final_relu, dtype=jnp.dtype(dtype), batch_size=batch_size,
                    metadata=meta, source=os.fspath(directory))


def embed_file(path, *, weights, postprocess: bool = False, pad: bool = False, **load_kwargs) -> np.ndarray:
    """One file -> [n, 128] embeddings. `weights` is a weights directory or an Embedder."""
    emb = weights if isinstance(weights, Embedder) else load_pretrained(weights, **load_kwargs)
    return emb.embed_file(path, postprocess=postprocess, pad=pad)


def embed_files(paths, *, weights, postprocess: bool = False, pad: bool = False, batch_size: int = 64,
                workers: int = 2, on_error: str = "skip", **load_kwargs):
    """Many files -> ({path: [n, 128]}, {path: error}). `weights` is a weights directory or an Embedder."""
    emb = weights if isinstance(weights, Embedder) else load_pretrained(weights, batch_size=batch_size, **load_kwargs)
    return emb.embed_files(paths, postprocess=postprocess, pad=pad, workers=workers, on_error=on_error)
