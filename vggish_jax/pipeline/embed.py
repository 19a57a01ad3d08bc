"""Audio files -> VGGish embeddings through the one device function (`pipeline.device`); internal: the
public face is `pipeline.embeddings`. The host decodes (and resamples, unless `pipeline.placement` puts that
on the device) in background threads or jax-free processes while batches are in flight; a file longer than
`stream_seconds` is read in blocks into the device stream, so memory does not grow with its length.
"""
from __future__ import annotations

import concurrent.futures as cf
import copy
import functools
import os
from typing import Callable, Iterable, Iterator

import jax.numpy as jnp
import numpy as np
from flax import nnx

from vggish_jax import audio, compilation_cache, skips
from vggish_jax.datasets import decode
from vggish_jax.models.vggish import modeling, params as params_lib, postprocess as post
from vggish_jax.models.vggish.frontend import DEFAULT, FrontendConfig
from vggish_jax.pipeline import host, placement, resample_jax, segments as seg, waveform as waveform_lib
from vggish_jax.pipeline.device import AudioEmbedder
from vggish_jax.models.vggish.frontend import file_examples  # noqa: F401  (re-exported)
from vggish_jax.spec import EmbeddingSpec, params_sha256

BAD_INPUT = host.BAD_INPUT  # reported per file; anything else is a bug and raises


class Embedder:
    """A VGGish model (a module, whose spec and PCA it takes, or a reference-layout param dict) with its PCA
    params; files, waveforms or log-mels -> embeddings. `batch_size`: about the examples per device call.
    `resample` ('auto', 'host', 'device'; `pipeline.placement`) is not part of the spec: the two agree to
    float rounding. `cfg` (`frontend.with_hop(hop_s, pad_last)`) is recorded in the spec."""

    def __init__(self, model: nnx.Module | dict, *, pca: post.PCAParams | None = None, final_relu: bool = False,
                 dtype=jnp.float32, batch_size: int = 64, metadata: dict | None = None, source: str = "params",
                 precision: str | None = None, formulation: str = "auto", mesh=None,
                 stream_seconds: float = 300.0, weights_dir: str | None = None, resample: str = "auto",
                 cfg: FrontendConfig = DEFAULT):
        compilation_cache.enable()
        self.resample_on_device = placement.resample_on_device(resample)
        if isinstance(model, nnx.Module):
            pca = pca if pca is not None else model.pca
            final_relu, dtype = model.final_relu, model.conv1.dtype
        else:
            model = modeling.build(model, final_relu=final_relu, dtype=dtype, source=source,
                                     width_divisor=params_lib.width_divisor_of_params(model) or 1)
        self.model, self.pca, self.final_relu, self.batch_size = model, pca, final_relu, batch_size
        self.dtype = jnp.dtype(dtype)
        self.metadata = dict(metadata or {})
        self.weights_dir, self.stream_seconds = weights_dir, stream_seconds
        self.device = AudioEmbedder(self.model, cfg=cfg, precision=precision, formulation=formulation, mesh=mesh,
                                    examples_per_call=batch_size)

    def with_frontend(self, cfg: FrontendConfig) -> "Embedder":
        """This Embedder with another frontend config (hop, pad_last), sharing the model and its device state."""
        if cfg == self.device.cfg:
            return self
        other = copy.copy(self)
        other.device = self.device.with_frontend(cfg)
        return other

    @property
    def spec(self) -> EmbeddingSpec:
        """How this Embedder's raw embeddings are made; `.replace(postprocess=True)` for its uint8 output."""
        attached = getattr(self.model, "spec", None)
        sha = attached.weights_sha256 if attached is not None else self.metadata.get("weights_sha256")
        if sha is None:  # built from in-memory params: hash what the model holds
            sha = self.metadata["weights_sha256"] = params_sha256(modeling.to_dict(self.model))
        return EmbeddingSpec.create(weights_sha256=sha, final_relu=self.final_relu, dtype=self.dtype.name,
                                    frontend=self.device.cfg, frontend_precision=self.device.precision)

    def embed_examples(self, examples: np.ndarray) -> np.ndarray:
        """[n, 96, 64] log-mel -> [n, 128] float32 raw embeddings (sharded fixed-size batches)."""
        return self.device.embed_examples(examples, self.batch_size)

    def _embed_16k(self, waveform: np.ndarray) -> np.ndarray:
        """One 16 kHz waveform (at least 0.975 s) -> [n, 128] float32 raw embeddings (`vggish_jax.embed` is public)."""
        return self.device._embed_16k(waveform_lib.to_16k(waveform, DEFAULT.sample_rate, pad=self.device.cfg.pad_last))

    def postprocess(self, embeddings: np.ndarray, rounding: str = "truncate") -> np.ndarray:
        if self.pca is None:
            raise params_lib.WeightsError(
                "these weights have no PCA params; convert with --pca FILE to enable --postprocess")
        return post.postprocess(embeddings, self.pca, rounding)

    def embed_file(self, path, *, postprocess: bool = False, pad: bool = False) -> np.ndarray:
        """One file -> [n, 128]; bad input raises (audio.AudioError, frontend.TooShortError)."""
        for _, value in self._iter([path], pad, workers=0):
            if isinstance(value, BaseException):
                raise value
            return self.postprocess(value) if postprocess else value

    def iter_files(self, paths: Iterable[str | os.PathLike], *, pad: bool = False, workers: int = 2,
                   postprocess: bool = False, processes: bool = False
                   ) -> Iterator[tuple[str, np.ndarray | skips.Skip]]:
        """Yield (path, [n, 128] embeddings or its skips.Skip) per file, in input order, as each is done;
        decoded up to 2 * `workers` ahead in threads (or jax-free spawned processes with `processes=True`)."""
        if postprocess and self.pca is None:
            self.postprocess(np.zeros((0, 128), np.float32))  # raises the clear no-PCA error up front
        for path, value in self._iter(paths, pad, workers, processes):
            if isinstance(value, BaseException):
                yield path, host.skip_of(path, value)
            else:
                yield path, self.postprocess(value) if postprocess else value

    def _iter(self, paths, pad: bool, workers: int, processes: bool = False) -> Iterator[tuple[str, object]]:
        """(path, [n, 128] or its BAD_INPUT exception) in input order; other exceptions raise."""
        pad = pad or self.device.cfg.pad_last  # a clip under one example is its own last partial example
        decode_one = functools.partial(host.decode_for_stream, pad=pad, stream_seconds=self.stream_seconds,
                                       resample=not self.resample_on_device)
        decoded = _prefetch((os.fspath(p) for p in paths), decode_one, workers, processes)
        if self.resample_on_device:  # workers decoded only; the device resamples (host.Native -> 16 kHz)
            decoded = resample_jax.to_16k(decoded)

        def items():
            for path, value in decoded:
                if isinstance(value, host.Long):  # a long file: read it again in blocks, as the device goes
                    value = seg.Blocks(audio.stream(path, DEFAULT.sample_rate))
                yield path, value

        for path, value in self.device.embed_stream(items()):
            if isinstance(value, BaseException) and not isinstance(value, BAD_INPUT):
                raise value
            yield path, value

    def embed_files(self, paths: Iterable[str], *, postprocess: bool = False, pad: bool = False,
                    workers: int = 2, on_error: str = "skip", processes: bool = False,
                    progress: Callable[[int], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Embed many files. Returns ({path: [n, 128]}, {path: one-line reason}) in input order. With
        on_error='raise' the first unreadable or too-short file raises instead."""
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if postprocess and self.pca is None:
            self.postprocess(np.zeros((0, 128), np.float32))
        results: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        for path, value in self._iter(paths, pad, workers, processes):
            if isinstance(value, BaseException):
                if on_error == "raise":
                    raise value
                errors[path] = host.skip_of(path, value).reason
            else:
                results[path] = self.postprocess(value) if postprocess else value
            if progress:
                progress(1)
        return results, errors


def _prefetch(items: Iterable, fn: Callable, workers: int, processes: bool = False) -> Iterator[tuple]:
    """Yield (item, fn(item)) in order, up to 2 * workers ahead, in threads or in spawned worker processes
    (jax-free, and they die with this process: datasets.decode.process_pool); workers=0: in this thread."""
    items = list(items)
    if workers <= 0:
        yield from ((item, fn(item)) for item in items)
        return
    if not processes:  # threads report their Cautions to this process's collectors themselves
        with cf.ThreadPoolExecutor(workers) as pool:
            yield from zip(items, decode.ordered_map(fn, items, pool, 2 * workers))
        return
    with decode.process_pool(workers) as pool:
        for item, (value, cautions) in zip(items, decode.ordered_map(
                functools.partial(audio.with_cautions, fn), items, pool, 2 * workers)):
            audio.forward_cautions(cautions)
            yield item, value


def load_pretrained(directory: str | os.PathLike, *, final_relu: bool | None = None, dtype: str = "float32",
                    batch_size: int = 64, precision: str | None = None, formulation: str = "auto",
                    mesh=None, resample: str = "auto", cfg: FrontendConfig = DEFAULT) -> Embedder:
    """An Embedder from a weights directory written by `vggish-jax convert` (or `params.save`);
    `resample`: where files not at 16 kHz are resampled, `cfg`: the frontend config (see Embedder)."""
    model, meta = modeling.load_pretrained_model(directory, final_relu=final_relu, dtype=jnp.dtype(dtype))
    return Embedder(model, batch_size=batch_size, metadata=meta, precision=precision, formulation=formulation,
                    mesh=mesh, weights_dir=os.path.abspath(os.fspath(directory)), resample=resample, cfg=cfg)


@functools.lru_cache(maxsize=4)
def _cached(directory: str, stamp: tuple, kwargs: tuple) -> Embedder:
    return load_pretrained(directory, **dict(kwargs))


def cached_embedder(directory: str | os.PathLike, **load_kwargs) -> Embedder:
    """`load_pretrained`, loaded once per (directory, its metadata file's mtime and size, options): repeated
    calls neither reload the weights nor recompile."""
    directory = os.path.abspath(os.fspath(directory))
    try:
        st = os.stat(os.path.join(directory, params_lib.METADATA))
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = ()  # load_pretrained names what is missing
    return _cached(directory, stamp, tuple(sorted(load_kwargs.items())))
