"""Input pipeline: a random-access source of clips -> fixed-shape, seeded, prefetched global batches.

A source is anything with len() and [i] -> {'mel': [n, 96, 64], 'label': int} and/or {'waveform': int16
[samples] at 16 kHz, 'label': int} (the FMA TFDS data sources, or a list in tests). Mel batches hold
'mel' [b, n, 96, 64]; waveform batches hold 'waveform' int16 [b, samples] (each clip's first `samples`,
zero-padded) and 'length' [b] (its valid samples), which `augment` turns into examples on the device.
Epoch e visits clips in the order permutation(seed, e), so a resumed run sees exactly the batches an
uninterrupted one would. Training drops the last incomplete batch; evaluation pads it and masks.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator

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


def collate(items: list[dict], n_examples: int, waveform_samples: int | None = None,
            ids=None) -> dict[str, np.ndarray]:
    """Records -> a batch: mel examples, or (waveform_samples given) fixed-length int16 waveforms + lengths."""
    batch = {"label": np.array([int(x["label"]) for x in items], np.int32)}
    if waveform_samples is None:
        batch["mel"] = np.stack([fix_examples(x["mel"], n_examples) for x in items])
        return batch
    ids = range(len(items)) if ids is None else ids
    fixed = [fix_waveform(x["waveform"], waveform_samples,
                          f"track {int(x['track_id'])}" if "track_id" in x else f"record {int(i)}")
             for i, x in zip(ids, items)]
    batch["waveform"] = np.stack([w for w, _ in fixed])
    batch["length"] = np.array([k for _, k in fixed], np.int32)
    return batch


def epoch_order(num: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num)


def train_batches(source, batch: int, n_examples: int, seed: int, epoch: int, start: int = 0,
                  process_index: int = 0, process_count: int = 1,
                  waveform_samples: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """This process's share of each global batch of one epoch, from batch index `start` on."""
    order = epoch_order(len(source), seed, epoch)
    steps = len(order) // batch
    local = batch // process_count
    for step in range(start, steps):
        ids = order[step * batch: (step + 1) * batch][process_index * local: (process_index + 1) * local]
        yield collate([source[int(i)] for i in ids], n_examples, waveform_samples, ids)


def eval_batches(source, batch: int, n_examples: int, process_index: int = 0, process_count: int = 1,
                 waveform_samples: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Every clip once, in order; the last batch padded with mask 0."""
    local = batch // process_count
    for start in range(0, len(source), batch):
        ids = list(range(start, min(start + batch, len(source))))
        ids = ids + [ids[-1]] * (batch - len(ids))
        mask = np.array([1.0 if start + j < len(source) else 0.0 for j in range(batch)], np.float32)
        ids, mask = ids[process_index * local: (process_index + 1) * local], mask[process_index * local: (process_index + 1) * local]
        yield {**collate([source[int(i)] for i in ids], n_examples, waveform_samples, ids), "mask": mask}


def prefetch(it: Iterator, size: int = 2, transform=lambda x: x) -> Iterator:
    """Run `it` (and `transform`, e.g. device placement) in a background thread, `size` items ahead."""
    if size <= 0:
        yield from map(transform, it)
        return
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()

    def worker():
        try:
            for x in it:
                q.put(transform(x))
        except BaseException as e:  # surfaced in the consumer
            q.put(e)
        q.put(done)

    threading.Thread(target=worker, daemon=True).start()
    while True:
        x = q.get()
        if x is done:
            return
        if isinstance(x, BaseException):
            raise x
        yield x
