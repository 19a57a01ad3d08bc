"""Cutting 16 kHz waveforms into fixed-length, bucketed segments for the device function. Imports no jax.

Each segment is right-padded to a bucket of n examples, BUCKETS = (1, 2, 4, 8, 16, 31), (n - 1) * 15360 +
15600 samples, so the device function compiles a few shapes. A longer file is cut into 31-example segments
every 31 * 15360 samples; framing is causal, so concatenated they equal the whole-file result. `cut_stream`
cuts the same segments from a file's blocks.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import numpy as np

from vggish_jax.models.vggish import frontend
from vggish_jax.models.vggish.frontend import DEFAULT, FrontendConfig

BUCKETS = (1, 2, 4, 8, 16, 31)


@dataclasses.dataclass
class Blocks:
    """A waveform given as consecutive 16 kHz blocks (e.g. `audio.stream`), to be cut as it is read."""
    blocks: Iterable[np.ndarray]


def bucket_for(n_examples: int, buckets: tuple[int, ...] = BUCKETS) -> int:
    """The smallest bucket holding `n_examples` (which must be 1..max(buckets))."""
    for b in buckets:
        if n_examples <= b:
            return b
    raise ValueError(f"{n_examples} examples do not fit the largest bucket ({max(buckets)}); cut them first")


def cut(wave: np.ndarray, max_examples: int = BUCKETS[-1], cfg: FrontendConfig = DEFAULT) -> list[np.ndarray]:
    """Segments of at most `max_examples` examples each, aligned to the example hop, covering every example
    of `wave` (trailing samples that make no whole example are dropped, as the frontend drops them)."""
    n = frontend.num_examples(wave.shape[0], cfg)
    return [wave[i * cfg.example_hop_samples:][: frontend.samples_for_examples(min(max_examples, n - i), cfg)]
            for i in range(0, n, max_examples)]


def cut_stream(blocks: Iterable[np.ndarray], max_examples: int = BUCKETS[-1],
               cfg: FrontendConfig = DEFAULT) -> Iterator[np.ndarray]:
    """`cut` of the concatenated blocks, yielded as soon as each segment's samples have arrived."""
    full = frontend.samples_for_examples(max_examples, cfg)
    step = max_examples * cfg.example_hop_samples
    buf, skip = np.zeros(0, np.float32), 0  # skip: samples still to drop (a hop longer than an example)
    for block in blocks:
        block = np.asarray(block)
        drop = min(skip, block.shape[0])
        block, skip = block[drop:], skip - drop
        buf = np.concatenate([buf, block]) if buf.size else block
        while buf.shape[0] >= full:
            yield buf[:full].copy()  # a copy, so the block it came from can be freed
            skip = max(0, step - buf.shape[0])
            buf = buf[step:]
    n = frontend.num_examples(buf.shape[0], cfg)
    if n:
        yield buf[: frontend.samples_for_examples(n, cfg)].copy()


def cyclic(x: np.ndarray, n: int, name: str = "clip") -> np.ndarray:
    """The first n rows of x, cyclically repeated when x has fewer (how a clip is fitted to n examples for
    the paper's flattened features and for fine-tuning)."""
    x = np.asarray(x)
    if x.shape[0] == 0:
        raise ValueError(f"{name}: no examples to repeat")
    return x[np.arange(n) % x.shape[0]]
