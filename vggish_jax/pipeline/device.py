"""The one device function for VGGish: 16 kHz waveforms -> jitted frontend -> VGGish -> embeddings.

`embed_waveforms` is jitted with the graph static, so every model of one shape shares its compilations.
int16 is divided by 32767 (how this project stores int16, `datasets.decode.to_int16`), not soundfile's
32768: up to 3e-5 apart in log-mel. `Embedder(model)` replicates the state over a 1-d ('data',) mesh (this
process's local devices under jax.distributed), shards each batch along its batch axis, and keeps `depth`
batches in flight so host decoding (`pipeline.host`), transfers and compute overlap.
"""
from __future__ import annotations

import collections
import copy
import functools
import os
from typing import Hashable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vggish_jax import audio, compilation_cache, skips
from vggish_jax.datasets.decode import INT16_SCALE
from vggish_jax.models import batching
from vggish_jax.models.vggish import frontend, frontend_jax, modeling, params as params_lib, postprocess as post
from vggish_jax.models.vggish.frontend import DEFAULT, FrontendConfig
from vggish_jax.pipeline import host, placement, resample_jax, segments as seg
from vggish_jax.spec import EmbeddingSpec, params_sha256


def _to_float(waveforms: jax.Array, dtype) -> jax.Array:
    if jnp.issubdtype(waveforms.dtype, jnp.integer):
        return waveforms.astype(dtype) * jnp.asarray(1.0 / INT16_SCALE, dtype)
    return waveforms.astype(dtype)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "precision", "formulation"))
def embed_waveforms(graphdef: nnx.GraphDef, state: nnx.State, waveforms: jax.Array, lengths: jax.Array, *,
                    cfg: FrontendConfig = DEFAULT, precision: str = "float32", formulation: str = "fft"):
    """[B, samples] int16/float32 + lengths [B] -> (embeddings [B, n, 128] float32, mask [B, n]: example i lies
    in clip b's true length; causal framing, so unmasked rows equal the unpadded clip's). float64 needs
    jax.enable_x64 around the call."""
    dtype = jnp.dtype(precision)
    ex = frontend_jax.examples(_to_float(waveforms, dtype), cfg, dtype, formulation)
    b, n = ex.shape[:2]
    emb = nnx.merge(graphdef, state)(ex.reshape((b * n,) + ex.shape[2:])).astype(jnp.float32)
    mask = jnp.arange(n)[None, :] < frontend.num_examples(lengths, cfg)[:, None]
    return emb.reshape(b, n, -1), mask


class _Clip:
    """A clip in embed_stream: its rows by segment, segments not yet embedded, and whether all are cut."""
    __slots__ = ("key", "parts", "missing", "closed", "error")

    def __init__(self, key, error=None):
        self.key, self.parts, self.missing, self.closed, self.error = key, [], 0, error is not None, error

    def done(self) -> bool:
        return self.closed and self.missing == 0

    def value(self):
        if self.error is not None:
            return self.error
        return np.concatenate(self.parts) if self.parts else np.zeros((0, modeling.EMBEDDING_SIZE), np.float32)


class Embedder:
    """A VGGish model as one data-parallel, asynchronous function: files, waveforms or log-mels -> embeddings.

    `model`: a module (whose PCA it takes) or a reference-layout param dict (built with `final_relu`, `dtype`).
    `batch_size`: about the examples per device call. `resample` ('auto', 'host', 'device';
    `pipeline.placement`) is not part of the spec: the two agree to float rounding. `cfg`
    (`frontend.with_hop(hop_s, pad_last)`) is. A file longer than `stream_seconds` is read in blocks."""

    def __init__(self, model: nnx.Module | dict, *, pca: post.PCAParams | None = None, final_relu: bool = False,
                 dtype=jnp.float32, batch_size: int = 64, metadata: dict | None = None, precision: str | None = None,
                 formulation: str = "auto", mesh: Mesh | None = None, stream_seconds: float = 300.0,
                 weights_dir: str | None = None, resample: str = "auto", cfg: FrontendConfig = DEFAULT,
                 buckets: tuple[int, ...] = seg.BUCKETS, depth: int = 2):
        compilation_cache.enable()
        if not isinstance(model, nnx.Module):
            model = modeling.build(model, final_relu=final_relu, dtype=dtype,
                                   width_divisor=params_lib.width_divisor_of_params(model) or 1)
        self.model, self.pca = model, pca if pca is not None else getattr(model, "pca", None)
        self.final_relu, self.dtype = model.final_relu, jnp.dtype(model.conv1.dtype)
        self.metadata, self.weights_dir, self.stream_seconds = dict(metadata or {}), weights_dir, stream_seconds
        self.resample_on_device = placement.resample_on_device(resample)
        self.cfg, self.buckets, self.batch_size, self.depth = cfg, tuple(buckets), batch_size, depth
        self.precision = frontend_jax.resolve_precision(precision)
        self.formulation = frontend_jax.resolve_formulation(formulation)
        if mesh is None:  # every device; this process's local ones when several processes run
            mesh = (jax.make_mesh((jax.device_count(),), ("data",)) if jax.process_count() == 1
                    else Mesh(np.array(jax.local_devices()), ("data",)))
        self.mesh = mesh
        self.num_devices = self.mesh.devices.size
        self.data = NamedSharding(self.mesh, P("data"))
        self.graphdef, state = nnx.split(model)
        self.state = jax.device_put(state, NamedSharding(self.mesh, P()))

    def with_frontend(self, cfg: FrontendConfig) -> "Embedder":
        """This embedder with another frontend config (hop, pad_last), sharing the model's device state."""
        if cfg == self.cfg:
            return self
        other = copy.copy(self)
        other.cfg = cfg
        return other

    @property
    def spec(self) -> EmbeddingSpec:
        """Of the raw embeddings; `.replace(postprocess=True)` for the uint8 output."""
        attached = getattr(self.model, "spec", None)
        sha = attached.weights_sha256 if attached is not None else self.metadata.get("weights_sha256")
        if sha is None:  # built from in-memory params: hash what the model holds
            sha = self.metadata["weights_sha256"] = params_sha256(modeling.to_dict(self.model))
        return EmbeddingSpec.create(weights_sha256=sha, final_relu=self.final_relu, dtype=self.dtype.name,
                                    frontend=self.cfg, frontend_precision=self.precision)

    def postprocess(self, embeddings: np.ndarray, rounding: str = "truncate") -> np.ndarray:
        return post.postprocess(embeddings, params_lib.require_pca(self.pca, "postprocess", self.weights_dir), rounding)

    # --- device calls -----------------------------------------------------------------------------------

    def _x64(self):
        return jax.enable_x64(self.precision == "float64")

    def _dispatch(self, waveforms: np.ndarray, lengths: np.ndarray):
        """Start one batch's transfer and compute (rows a multiple of the devices); fetched later."""
        with self._x64():
            return embed_waveforms(self.graphdef, self.state, jax.device_put(waveforms, self.data),
                                   jax.device_put(lengths, self.data), cfg=self.cfg, precision=self.precision,
                                   formulation=self.formulation)

    @staticmethod
    def _waveforms(waveforms) -> np.ndarray:
        waveforms = np.asarray(waveforms)
        return waveforms if waveforms.dtype in (np.int16, np.float32) else waveforms.astype(np.float32)

    def _pad(self, x: np.ndarray) -> np.ndarray:
        return np.pad(x, [(0, -x.shape[0] % self.num_devices)] + [(0, 0)] * (x.ndim - 1))

    def __call__(self, waveforms: np.ndarray, lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """[B, samples] int16/float32 (+ valid lengths, default all) -> ([B, n, 128] float32, [B, n] bool)."""
        waveforms = self._waveforms(waveforms)
        b = waveforms.shape[0]
        if lengths is None:
            lengths = np.full(b, waveforms.shape[1])
        emb, mask = self._dispatch(self._pad(waveforms), self._pad(np.asarray(lengths, np.int32)))
        return np.asarray(emb)[:b], np.asarray(mask)[:b]

    def examples(self, waveforms: np.ndarray) -> np.ndarray:
        """The device frontend alone: [B, samples] -> [B, n, 96, 64] float32 log-mel (same code as __call__)."""
        waveforms = self._waveforms(waveforms)
        b = waveforms.shape[0]
        with self._x64():
            x = _to_float(jax.device_put(self._pad(waveforms), self.data), jnp.dtype(self.precision))
            return np.asarray(frontend_jax.waveforms_to_examples(x, self.cfg, self.precision, self.formulation))[:b]

    def embed_examples(self, examples: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """[n, 96, 64] log-mel (e.g. stored mels) -> [n, 128] float32, sharded batches, `depth` in flight."""
        examples = np.asarray(examples, np.float32)
        inflight: collections.deque = collections.deque()
        out = []
        for batch, k in batching.fixed_batches(examples, batch_size or self.batch_size, self.num_devices):
            inflight.append((modeling.forward(self.graphdef, self.state, jax.device_put(batch, self.data)), k))
            while len(inflight) > self.depth:
                y, k = inflight.popleft()
                out.append(np.asarray(y)[:k])
        out += [np.asarray(y)[:k] for y, k in inflight]
        return np.concatenate(out) if out else np.zeros((0, modeling.EMBEDDING_SIZE), np.float32)

    # --- host-side batching ----------------------------------------------------------------------------

    def clips_per_call(self, bucket: int) -> int:
        """Clips per call for a bucket: about `batch_size` examples, a multiple of the device count."""
        b = max(1, self.batch_size // bucket)
        return b + (-b % self.num_devices)

    def _embed_16k(self, wave: np.ndarray) -> np.ndarray:
        """One 16 kHz waveform (at least one example long; not checked: see `pipeline.waveform`) -> [n, 128]."""
        return next(self.embed_stream([(0, wave)]))[1]

    def embed_stream(self, items: Iterable[tuple[Hashable, object]], *,
                     max_pending: int | None = None) -> Iterator[tuple[Hashable, object]]:
        """(key, 16 kHz waveform or segments.Blocks) pairs -> (key, [n, 128] embeddings), in input order.

        Clips are cut into bucketed segments batched across clips; each is yielded once its segments are
        done. An error value, or an exception a Blocks stream raises part-way, passes through in its place.
        Beyond `max_pending` waiting clips (default: enough for the largest batch) the oldest clip's batches
        run part-full, so memory and latency stay bounded."""
        if max_pending is None:
            max_pending = 2 * max(self.clips_per_call(b) for b in self.buckets)
        stream = _Stream(self)
        for key, wave in items:
            stream.take(key, wave)
            yield from stream.ready()
            while len(stream.order) > max_pending:  # the oldest clip waits on part-full batches: run them
                stream.finish(stream.order[0])
                yield from stream.ready()
        stream.finish()
        yield from stream.ready()

    # --- files -----------------------------------------------------------------------------------------

    def embed_file(self, path, *, postprocess: bool = False, pad: bool = False) -> np.ndarray:
        """One file -> [n, 128]; bad input raises (audio.AudioError, frontend.TooShortError)."""
        found, _ = self.embed_files([path], postprocess=postprocess, pad=pad, workers=0, on_error="raise")
        return found[os.fspath(path)]

    def iter_files(self, paths: Iterable[str | os.PathLike], *, pad: bool = False, workers: int = 2,
                   postprocess: bool = False, processes: bool = False, silent: str | None = None
                   ) -> Iterator[tuple[str, np.ndarray | skips.Skip]]:
        """Yield (path, [n, 128] embeddings or its skips.Skip) per file, in input order, as each is done (with
        `silent`, a silent file as a "silent" Skip whose reason names that consequence: `host.decode_for_stream`);
        decoded up to 2 * `workers` ahead in threads (or jax-free spawned processes with `processes=True`)."""
        if postprocess:
            params_lib.require_pca(self.pca, "postprocess", self.weights_dir)  # up front, not at the first file
        for path, value in self._iter(paths, pad, workers, processes, silent):
            if isinstance(value, BaseException):
                yield path, host.skip_of(path, value)
            else:
                yield path, self.postprocess(value) if postprocess else value

    def embed_files(self, paths: Iterable[str], *, postprocess: bool = False, pad: bool = False,
                    workers: int = 2, on_error: str = "skip", processes: bool = False
                    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """({path: [n, 128]}, {path: one-line reason}) in input order; with on_error='raise' the first
        unreadable or too-short file raises instead."""
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if postprocess:
            params_lib.require_pca(self.pca, "postprocess", self.weights_dir)  # up front, not at the first file
        results: dict[str, np.ndarray] = {}
        errors: dict[str, str] = {}
        for path, value in self._iter(paths, pad, workers, processes):
            if not isinstance(value, BaseException):
                results[path] = self.postprocess(value) if postprocess else value
            elif on_error == "raise":
                raise value
            else:
                errors[path] = host.skip_of(path, value).reason
        return results, errors

    def _iter(self, paths, pad: bool, workers: int, processes: bool = False,
              silent: str | None = None) -> Iterator[tuple[str, object]]:
        """(path, [n, 128] or its host.BAD_INPUT exception) in input order; other exceptions raise. Workers
        decode (and resample, unless the device does); a `host.Long` file is read again in blocks."""
        pad = pad or self.cfg.pad_last  # a clip under one example is its own last partial example
        decode_one = functools.partial(host.decode_for_stream, pad=pad, stream_seconds=self.stream_seconds,
                                       resample=not self.resample_on_device, silent=silent)
        decoded = host.prefetch((os.fspath(p) for p in paths), decode_one, workers, processes)
        if self.resample_on_device:  # host.Native -> 16 kHz
            decoded = resample_jax.to_16k(decoded)
        items = ((p, seg.Blocks(audio.stream(p, DEFAULT.sample_rate)) if isinstance(v, host.Long) else v)
                 for p, v in decoded)
        for path, value in self.embed_stream(items):
            if isinstance(value, BaseException) and not isinstance(value, host.BAD_INPUT):
                raise value
            yield path, value


class _Stream:
    """One `embed_stream`'s state: clips in input order, segments queued per bucket, batches in flight."""

    def __init__(self, emb: Embedder):
        self.emb = emb
        self.order: collections.deque[_Clip] = collections.deque()
        self.queues: dict[int, list] = {b: [] for b in emb.buckets}  # bucket -> [(clip, part index, segment)]
        self.inflight: collections.deque = collections.deque()  # (part, embeddings, mask)

    def take(self, key, wave) -> None:
        """Open a clip for `wave` (an array, a Blocks stream, or an error passed through) and queue its segments."""
        emb = self.emb
        clip = _Clip(key) if isinstance(wave, (np.ndarray, seg.Blocks)) else _Clip(key, wave)
        self.order.append(clip)
        if isinstance(wave, np.ndarray):
            for s in seg.cut(wave, emb.buckets[-1], emb.cfg):
                self.add(clip, s)
        elif isinstance(wave, seg.Blocks):
            try:
                for s in seg.cut_stream(wave.blocks, emb.buckets[-1], emb.cfg):
                    self.add(clip, s)
            except Exception as e:  # the stream's own failure (a corrupt block): this clip's result
                clip.error = e
        clip.closed = True

    def collect(self) -> None:
        part, emb, mask = self.inflight.popleft()
        emb, mask = np.asarray(emb), np.asarray(mask)
        for j, (clip, index, _) in enumerate(part):
            clip.parts[index] = emb[j][mask[j]]
            clip.missing -= 1

    def run(self, bucket: int) -> None:
        """Dispatch every queued segment of `bucket`, in full batches and a part-full last one."""
        emb = self.emb
        todo, self.queues[bucket] = self.queues[bucket], []
        full = emb.clips_per_call(bucket)
        length = frontend.samples_for_examples(bucket, emb.cfg)
        for i in range(0, len(todo), full):
            part = todo[i: i + full]
            size = batching.padded_size(len(part), full, emb.num_devices)
            batch = np.zeros((size, length), part[0][2].dtype)
            lengths = np.zeros(size, np.int32)
            for j, (_, _, s) in enumerate(part):
                batch[j, : s.shape[0]] = s
                lengths[j] = s.shape[0]
            self.inflight.append((part, *emb._dispatch(batch, lengths)))
            while len(self.inflight) > emb.depth:
                self.collect()

    def add(self, clip: _Clip, s: np.ndarray) -> None:
        b = seg.bucket_for(frontend.num_examples(s.shape[0], self.emb.cfg), self.emb.buckets)
        self.queues[b].append((clip, len(clip.parts), s))
        clip.parts.append(None)
        clip.missing += 1
        if len(self.queues[b]) >= self.emb.clips_per_call(b):
            self.run(b)

    def finish(self, clip: _Clip | None = None) -> None:
        """Run what `clip` waits on until it is done (None: every queued segment and every batch in flight)."""
        for b in self.emb.buckets:
            if self.queues[b] and (clip is None or any(c is clip for c, _, _ in self.queues[b])):
                self.run(b)
        while self.inflight and (clip is None or clip.missing):
            self.collect()

    def ready(self) -> Iterator[tuple[Hashable, object]]:
        while self.order and self.order[0].done():
            clip = self.order.popleft()
            yield clip.key, clip.value()
