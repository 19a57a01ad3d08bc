"""The one fixed-shape batcher: jitted functions compile once per input shape, so batches are padded to a
few sizes. Full batches have `batch_size` rows; a final part-full batch is padded only to the next power of
two (at most log2(batch_size) + 1 extra shapes), not to `batch_size`: one 30-s clip with a batch of 2048
examples runs as 32 rows, not 2048. Sizes are kept a multiple of the device count so batches shard evenly.
Imports no jax.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np


def padded_size(rows: int, batch_size: int, multiple: int = 1) -> int:
    """Rows a batch holding `rows` (1..batch_size) real rows is padded to: the next power of two, capped at
    batch_size, rounded up to a multiple of `multiple`."""
    size = min(batch_size, 1 << max(0, rows - 1).bit_length())
    return size + (-size % multiple)


def fixed_batches(x: np.ndarray, batch_size: int, multiple: int = 1) -> Iterator[tuple[np.ndarray, int]]:
    """(batch zero-padded to a `padded_size`, number of real rows) over the rows of x."""
    batch_size += -batch_size % multiple
    for i in range(0, x.shape[0], batch_size):
        batch = x[i: i + batch_size]
        k = batch.shape[0]
        size = padded_size(k, batch_size, multiple)
        if k < size:
            batch = np.concatenate([batch, np.zeros((size - k,) + batch.shape[1:], batch.dtype)])
        yield batch, k
