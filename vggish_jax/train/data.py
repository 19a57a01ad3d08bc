"""Input pipeline on grain: a random-access source of clips -> fixed-shape, seeded, global batches.

A source has len() and [i] -> {'mel': [n, 96, 64] and/or 'waveform': int16 at 16 kHz, 'label'}. Waveform
batches hold each clip's first `samples` zero-padded, and 'length'. `batch_size` is the global batch; each
process reads its contiguous slice. Element k of `train_dataset` is step k, a function of (seed, k), so the
iterator state is a position and a resume sees the same batches. Evaluation: every clip once, tail masked.
"""
from __future__ import annotations

import dataclasses
import functools

import grain
import numpy as np

from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import segments


def fix_examples(mel: np.ndarray, n: int) -> np.ndarray:
    """[k, 96, 64] -> [n, 96, 64]: the first n examples, cyclically repeated if the clip has fewer."""
    return segments.cyclic(np.asarray(mel, np.float32), n, "a clip's log-mels")


def fix_waveform(wave, samples: int, name: str = "clip") -> tuple[np.ndarray, int]:
    """int16 [k] -> (int16 [samples]: its first samples, zero-padded; valid samples)."""
    wave = np.asarray(wave)
    if wave.dtype != np.int16 or wave.ndim != 1:
        raise ValueError(f"{name}: 'waveform' must be int16 [samples] at 16 kHz, got {wave.dtype} {list(wave.shape)}")
    if frontend.num_examples(wave.shape[0]) == 0:
        raise ValueError(f"{name}: {wave.shape[0]} samples are shorter than one VGGish example "
                         f"({frontend.DEFAULT.example_samples}); rebuild the dataset, which skips such clips")
    out = np.zeros(samples, np.int16)
    k = min(samples, wave.shape[0])
    out[:k] = wave[:k]
    return out, k


def input_kind(source, requested: str = "auto") -> str:
    """'mel' or 'waveform': what the source's records hold, as `Config.input` asks (auto: waveform if any)."""
    keys = set(source[0])
    if requested == "auto":
        return "waveform" if "waveform" in keys else "mel"
    if requested not in keys:
        raise ValueError(f"input={requested} but the records hold only {sorted(keys - {'label', 'track_id'})}; "
                         f"use a *_waveform dataset (e.g. --dataset fma/small_waveform) or input=auto")
    return requested


@dataclasses.dataclass(frozen=True)
class _Collate:
    """(clip id, mask) pairs -> one batch of their records; a picklable object, so grain workers can run it."""
    source: object
    n_examples: int
    waveform_samples: int | None = None  # None: mel batches

    def __call__(self, items: list[tuple[int, float]]) -> dict[str, np.ndarray]:
        records = [(i, self.source[i]) for i, _ in items]
        batch = {"label": np.array([int(x["label"]) for _, x in records], np.int32),
                 "mask": np.array([m for _, m in items], np.float32)}
        if self.waveform_samples is None:
            batch["mel"] = np.stack([fix_examples(x["mel"], self.n_examples) for _, x in records])
        else:
            fixed = [fix_waveform(x["waveform"], self.waveform_samples,
                                  f"track {int(x['track_id'])}" if "track_id" in x else f"record {i}")
                     for i, x in records]
            batch["waveform"] = np.stack([w for w, _ in fixed])
            batch["length"] = np.array([k for _, k in fixed], np.int32)
        return batch


def _train_id(order: grain.MapDataset, n: int, steps: int, batch: int, local: int, process_index: int,
              k: int) -> tuple[int, float]:
    """Position k of this process's clip stream -> (clip id, 1.0): its slice of each global batch. `order` holds
    epoch e's seeded permutation at positions e * n .. e * n + n - 1."""
    step, row = divmod(int(k), local)
    epoch, step = divmod(step, steps)
    return int(order[epoch * n + step * batch + process_index * local + row]), 1.0


def _eval_id(n: int, batch: int, local: int, process_index: int, k: int) -> tuple[int, float]:
    """Position k of this process's eval stream -> (clip id, mask): clips in order, the tail padded (mask 0)."""
    b, row = divmod(int(k), local)
    pos = b * batch + process_index * local + row
    return min(pos, n - 1), float(pos < n)


def train_dataset(source, batch: int, n_examples: int, seed: int, epochs: int, process_index: int = 0,
                  process_count: int = 1, waveform_samples: int | None = None) -> grain.MapDataset:
    """This process's share of every global batch of `epochs` epochs; element k is global step k."""
    n, steps, local = len(source), len(source) // batch, batch // process_count
    order = grain.MapDataset.range(n).shuffle(seed=seed).repeat(epochs)  # a new permutation each epoch
    ids = grain.MapDataset.range(epochs * steps * local).map(
        functools.partial(_train_id, order, n, steps, batch, local, process_index))
    return ids.batch(local, drop_remainder=True, batch_fn=_Collate(source, n_examples, waveform_samples))


def eval_dataset(source, batch: int, n_examples: int, process_index: int = 0, process_count: int = 1,
                 waveform_samples: int | None = None) -> grain.MapDataset:
    """Every clip once, in order, as global batches ('mask' 0 on the padding of the last)."""
    local = batch // process_count
    ids = grain.MapDataset.range(-(-len(source) // batch) * local).map(
        functools.partial(_eval_id, len(source), batch, local, process_index))
    return ids.batch(local, drop_remainder=True, batch_fn=_Collate(source, n_examples, waveform_samples))


def iterate(ds: grain.MapDataset, workers: int = 0, prefetch: int = 2, transform=None) -> grain.DatasetIterator:
    """A checkpointable iterator over `ds`: batches built in `workers` grain processes (0: in this one),
    `transform` (device placement) applied, `prefetch` batches ready ahead in a background thread."""
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    if workers > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain reads its settings as absl flags; we have no absl main: defaults
            flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    if transform is not None:
        it = it.map(transform)
    if prefetch > 0:
        it = grain.experimental.ThreadPrefetchIterDataset(it, prefetch_buffer_size=prefetch)
    return iter(it)
