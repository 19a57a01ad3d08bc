"""The one device function for VGGish: 16 kHz waveforms -> jitted frontend -> VGGish -> embeddings.

`AudioEmbedder(model)` holds the model's parameters replicated over a mesh of every device
(`jax.make_mesh((jax.device_count(),), ('data',))`) and one jitted function

    (waveforms [B, samples] int16 or float32, lengths [B]) -> (embeddings [B, n, 128] float32, mask [B, n])

whose batch axis is sharded with `NamedSharding(mesh, P('data'))`; B is padded to a multiple of the device
count. n = examples in `samples`; mask[b, i] says example i lies inside clip b's true length (the causal
framing rule of `frontend_jax`, so unmasked rows equal the unpadded clip's). int16 is divided by 32767,
the inverse of how this project stores int16 audio (`datasets.decode.to_int16`; the fine-tuning path does
the same), not soundfile's 32768: the two differ by up to 3e-5 in log-mel. The frontend runs in float32
with the per-backend formulation of `frontend_jax` (within 1e-3 of the NumPy oracle in log-mel) or, with precision="float64",
in float64 (within 1e-5). It is compiled once per (B, samples): `embed_stream` feeds it only the bucket
shapes of `segments.BUCKETS`, with a fixed batch per bucket.

Under several processes (jax.distributed) the mesh spans this process's local devices: each process embeds
its own work.
"""
from __future__ import annotations

import collections
import functools
from typing import Hashable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vggish_jax.datasets.decode import INT16_SCALE
from vggish_jax.models.vggish import frontend_jax
from vggish_jax.models.vggish.frontend import DEFAULT, FrontendConfig
from vggish_jax.pipeline import segments as seg



def default_mesh() -> Mesh:
    """A 1-d ('data',) mesh over every device (every local device when several processes run)."""
    if jax.process_count() == 1:
        return jax.make_mesh((jax.device_count(),), ("data",))
    return Mesh(np.array(jax.local_devices()), ("data",))


def valid_examples(lengths: jax.Array, cfg: FrontendConfig = DEFAULT) -> jax.Array:
    """frontend.num_examples for an array of lengths (traceable)."""
    lengths = jnp.asarray(lengths)
    frames = jnp.where(lengths >= cfg.window_length, 1 + (lengths - cfg.window_length) // cfg.hop_length, 0)
    return jnp.where(frames >= cfg.example_frames, 1 + (frames - cfg.example_frames) // cfg.example_hop_frames, 0)


def _to_float(waveforms: jax.Array, dtype) -> jax.Array:
    if jnp.issubdtype(waveforms.dtype, jnp.integer):
        return waveforms.astype(dtype) * jnp.asarray(1.0 / INT16_SCALE, dtype)
    return waveforms.astype(dtype)


class AudioEmbedder:
    """A VGGish model as one jitted, data-parallel waveforms -> embeddings function (see the module doc)."""

    def __init__(self, model: nnx.Module, *, cfg: FrontendConfig = DEFAULT, precision: str = "float32",
                 formulation: str = "auto", mesh: Mesh | None = None, examples_per_call: int = 64,
                 buckets: tuple[int, ...] = seg.BUCKETS):
        self.cfg, self.buckets, self.examples_per_call = cfg, tuple(buckets), examples_per_call
        self.precision = frontend_jax.resolve_precision(precision)
        self.formulation = frontend_jax.resolve_formulation(formulation)
        self.mesh = mesh if mesh is not None else default_mesh()
        self.num_devices = self.mesh.devices.size
        self.data = NamedSharding(self.mesh, P("data"))
        replicated = NamedSharding(self.mesh, P())
        graphdef, state = nnx.split(model)
        self.state = jax.device_put(state, replicated)
        dtype = jnp.dtype(self.precision)

        def examples(waveforms):
            return frontend_jax.examples(_to_float(waveforms, dtype), cfg, dtype, self.formulation)

        def embed(state, waveforms, lengths):
            ex = examples(waveforms)
            b, n = ex.shape[:2]
            emb = nnx.merge(graphdef, state)(ex.reshape((b * n,) + ex.shape[2:])).astype(jnp.float32)
            mask = jnp.arange(n)[None, :] < valid_examples(lengths, cfg)[:, None]
            return emb.reshape(b, n, -1), mask

        self._embed = jax.jit(embed, in_shardings=(replicated, self.data, self.data),
                              out_shardings=(self.data, self.data))
        self._examples = jax.jit(examples, in_shardings=self.data, out_shardings=self.data)
        self._model = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x).astype(jnp.float32),
                              in_shardings=(replicated, self.data), out_shardings=self.data)

    # --- device calls (numpy in, numpy out) ---------------------------------------------------------------

    def _x64(self):
        return jax.enable_x64(self.precision == "float64")

    def _pad_batch(self, *arrays: np.ndarray) -> tuple[int, list[np.ndarray]]:
        b = arrays[0].shape[0]
        extra = -b % self.num_devices
        if extra:
            arrays = [np.concatenate([a, np.zeros((extra,) + a.shape[1:], a.dtype)]) for a in arrays]
        return b, list(arrays)

    def __call__(self, waveforms: np.ndarray, lengths: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """[B, samples] int16/float32 (+ valid lengths, default all) -> ([B, n, 128] float32, [B, n] bool)."""
        waveforms = np.asarray(waveforms)
        if waveforms.dtype not in (np.int16, np.float32):
            waveforms = waveforms.astype(np.float32)
        if lengths is None:
            lengths = np.full(waveforms.shape[0], waveforms.shape[1])
        b, (w, l) = self._pad_batch(waveforms, np.asarray(lengths, np.int32))
        with self._x64():
            emb, mask = self._embed(self.state, jax.device_put(w, self.data), jax.device_put(l, self.data))
        return np.asarray(emb)[:b], np.asarray(mask)[:b]

    def examples(self, waveforms: np.ndarray) -> np.ndarray:
        """The device frontend alone: [B, samples] -> [B, n, 96, 64] float32 log-mel (same code as __call__)."""
        waveforms = np.asarray(waveforms)
        if waveforms.dtype not in (np.int16, np.float32):
            waveforms = waveforms.astype(np.float32)
        b, (w,) = self._pad_batch(waveforms)
        with self._x64():
            return np.asarray(self._examples(jax.device_put(w, self.data)))[:b]

    def embed_examples(self, examples: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """[n, 96, 64] log-mel (e.g. stored mels) -> [n, 128], in fixed sharded batches of `batch_size`."""
        examples = np.asarray(examples, np.float32)
        batch_size += -batch_size % self.num_devices
        out = []
        for i in range(0, examples.shape[0], batch_size):
            chunk = examples[i: i + batch_size]
            k = chunk.shape[0]
            if k < batch_size:
                chunk = np.concatenate([chunk, np.zeros((batch_size - k,) + chunk.shape[1:], np.float32)])
            out.append(np.asarray(self._model(self.state, jax.device_put(chunk, self.data)))[:k])
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)

    # --- host-side batching ----------------------------------------------------------------------------

    def clips_per_call(self, bucket: int) -> int:
        """Batch size for a bucket: about `examples_per_call` examples, a multiple of the device count."""
        b = max(1, self.examples_per_call // bucket)
        return b + (-b % self.num_devices)

    def embed_waveform(self, wave: np.ndarray) -> np.ndarray:
        """One 16 kHz waveform (at least one example long) -> [n, 128]."""
        key, out = next(self.embed_stream([(0, wave)]))
        return out

    def embed_stream(self, items: Iterable[tuple[Hashable, object]], *,
                     max_pending: int | None = None) -> Iterator[tuple[Hashable, object]]:
        """(key, 16 kHz waveform) pairs -> (key, [n, 128] embeddings), in input order.

        Each waveform is cut into bucketed segments (`segments.cut`), segments of many clips are batched per
        bucket, and a clip is yielded as soon as all its segments are done. A value that is not an ndarray
        (an error) passes through in its place. At most `max_pending` clips wait for a batch to fill
        (default: enough for the largest batch); beyond that the oldest clip's batches run part-full, so
        memory and latency stay bounded.
        """
        if max_pending is None:
            max_pending = 2 * max(self.clips_per_call(b) for b in self.buckets)
        order: collections.deque = collections.deque()  # [key, parts list, parts missing]
        queues: dict[int, list] = {b: [] for b in self.buckets}  # bucket -> [(entry, index, segment)]

        def run(bucket: int) -> None:
            todo, queues[bucket] = queues[bucket], []
            size = self.clips_per_call(bucket)
            length = seg.segment_samples(bucket, self.cfg)
            for i in range(0, len(todo), size):
                part = todo[i: i + size]
                batch = np.zeros((size, length), part[0][2].dtype)
                lengths = np.zeros(size, np.int32)
                for j, (_, _, s) in enumerate(part):
                    batch[j, : s.shape[0]] = s
                    lengths[j] = s.shape[0]
                emb, mask = self(batch, lengths)
                for j, (entry, index, _) in enumerate(part):
                    entry[1][index] = emb[j][mask[j]]
                    entry[2] -= 1

        def ready() -> Iterator[tuple[Hashable, object]]:
            while order and order[0][2] == 0:
                key, parts, _ = order.popleft()
                yield key, (parts if not isinstance(parts, list) else
                            np.concatenate(parts) if parts else np.zeros((0, 128), np.float32))

        for key, wave in items:
            if not isinstance(wave, np.ndarray):
                order.append([key, wave, 0])
            else:
                parts = seg.cut(wave, self.buckets[-1], self.cfg)
                entry = [key, [None] * len(parts), len(parts)]
                order.append(entry)
                for index, s in enumerate(parts):
                    b = seg.bucket_for(frontend_jax.num_examples(s.shape[0], self.cfg), self.buckets)
                    queues[b].append((entry, index, s))
                    if len(queues[b]) >= self.clips_per_call(b):
                        run(b)
            yield from ready()
            while len(order) > max_pending:  # the oldest clip waits on part-full batches: run them
                oldest = order[0]
                for b in self.buckets:
                    if any(e is oldest for e, _, _ in queues[b]):
                        run(b)
                yield from ready()
        for b in self.buckets:
            if queues[b]:
                run(b)
        yield from ready()
