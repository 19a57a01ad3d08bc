"""Input pipeline: a random-access source of clips -> fixed-shape, seeded, prefetched global batches.

A source is anything with len() and [i] -> {'mel': [n, 96, 64], 'label': int} (the FMA TFDS data source, or
a list in tests). Epoch e visits clips in the order permutation(seed, e), so a resumed run sees exactly the
batches an uninterrupted one would. Training drops the last incomplete batch; evaluation pads it and masks.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np


def fix_examples(mel: np.ndarray, n: int) -> np.ndarray:
    """[k, 96, 64] -> [n, 96, 64]: the first n examples, cyclically repeated if the clip has fewer."""
    mel = np.asarray(mel, np.float32)
    if mel.shape[0] == 0:
        raise ValueError("a clip with no log-mel examples")
    return mel[np.arange(n) % mel.shape[0]]


def epoch_order(num: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num)


def train_batches(source, batch: int, n_examples: int, seed: int, epoch: int, start: int = 0,
                  process_index: int = 0, process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """This process's share of each global batch of one epoch, from batch index `start` on."""
    order = epoch_order(len(source), seed, epoch)
    steps = len(order) // batch
    local = batch // process_count
    for step in range(start, steps):
        ids = order[step * batch: (step + 1) * batch][process_index * local: (process_index + 1) * local]
        items = [source[int(i)] for i in ids]
        yield {"mel": np.stack([fix_examples(x["mel"], n_examples) for x in items]),
               "label": np.array([int(x["label"]) for x in items], np.int32)}


def eval_batches(source, batch: int, n_examples: int, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Every clip once, in order; the last batch padded with mask 0."""
    local = batch // process_count
    for start in range(0, len(source), batch):
        ids = list(range(start, min(start + batch, len(source))))
        ids = ids + [ids[-1]] * (batch - len(ids))
        mask = np.array([1.0 if start + j < len(source) else 0.0 for j in range(batch)], np.float32)
        ids, mask = ids[process_index * local: (process_index + 1) * local], mask[process_index * local: (process_index + 1) * local]
        items = [source[int(i)] for i in ids]
        yield {"mel": np.stack([fix_examples(x["mel"], n_examples) for x in items]),
               "label": np.array([int(x["label"]) for x in items], np.int32), "mask": mask}


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
