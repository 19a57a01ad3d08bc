"""Host side of the embedding pipeline: audio files -> 16 kHz waveforms. Imports no jax (light workers)."""
from __future__ import annotations

import concurrent.futures as cf
import functools
import os
from typing import Callable, Iterable, Iterator

import numpy as np

from vggish_jax import audio, skips
from vggish_jax.datasets import decode
from vggish_jax.models.vggish import frontend
from vggish_jax.models.vggish.frontend import DEFAULT

BAD_INPUT = (audio.AudioError, frontend.TooShortError)  # a file's own problem; anything else is a bug


class Native:
    """What `decode_for_stream(..., resample=False)` returns for a file not at 16 kHz: its mono float32
    samples at their own rate, resampled later on the device (`resample_jax.to_16k`). Pickles."""

    def __init__(self, wave: np.ndarray, sample_rate: int, path: str, pad: bool):
        self.wave, self.sample_rate, self.path, self.pad = wave, sample_rate, path, pad


class Long:
    """What `decode_for_stream` returns for a file longer than its limit: the caller streams it in blocks
    (`audio.stream`) instead of holding it whole. Pickles, so it comes back from worker processes."""

    def __init__(self, path: str):
        self.path = path


# Exceptions without a `kind` attribute (audio.AudioError and pipeline.waveform.WaveformError carry theirs),
# by class: the kind is data, never read back out of the message.
_KIND_OF_CLASS = ((frontend.TooShortError, "too_short"), (FileNotFoundError, "missing"),
                  (PermissionError, "unreadable"), (IsADirectoryError, "unreadable"))


def skip_of(path: str, e: BaseException | skips.Skip, *, on_disk: bool = True) -> skips.Skip:
    """The Skip record of an input that failed with `e` (a Skip already made is returned as it is);
    on_disk=False for an input that is not a file (`path` is then its key)."""
    if isinstance(e, skips.Skip):
        return e
    kind = getattr(e, "kind", None) or next((k for cls, k in _KIND_OF_CLASS if isinstance(e, cls)), "undecodable")
    if kind == "undecodable" and on_disk and not os.path.lexists(path):
        kind = "missing"  # gone from disk: a fact of the file system, whatever the decoder said
    return skips.Skip(kind, os.fspath(path), str(e))


def decode_for_stream(path: str, pad: bool = False, stream_seconds: float | None = 300.0,
                      block_seconds: float = 60.0, resample: bool = True,
                      silent: str | None = None) -> np.ndarray | Exception | Long | Native:
    """A file as 16 kHz mono float32 at least one example long (zero-padded with `pad`), for workers: its
    BAD_INPUT exception is returned, not raised; `Long(path)` past `stream_seconds` (None: no limit); with
    resample=False a file not at 16 kHz comes back as `Native`. With `silent` (the consequence its reason
    names) a file `audio.is_silent` calls silent, on all its samples at its own rate, is a SilentAudioError."""
    name = os.fspath(path)
    try:
        rate = DEFAULT.sample_rate
        if not resample:
            with audio.open_audio(name) as f:
                rate = f.samplerate
        peak = [0.0] if silent is not None else None
        blocks, n = [], 0
        for block in audio.stream(name, rate, block_seconds, mono_peak=peak):
            n += block.shape[0]
            if stream_seconds is not None and n > stream_seconds * rate:
                if peak is None or not audio.is_silent(np.asarray(peak)):
                    return Long(name)
                blocks = []  # silent so far: read on, without holding it, until a sample is loud enough
            else:
                blocks.append(block)
        if peak is not None and audio.is_silent(np.asarray(peak)):
            return audio.decode.silent_error(name, audio.decode.peak_dbfs(np.asarray(peak)), silent)
        wave = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        if rate != DEFAULT.sample_rate:
            return Native(wave, rate, name, pad)  # the length check follows the resampling
        return frontend.fit_to_examples(wave, pad=pad, name=name)
    except BAD_INPUT as e:  # one file's problem (anything else is a bug and raises)
        return e


def load_clip(path: str | os.PathLike, *, pad: bool = False) -> np.ndarray:
    """A file as 16 kHz mono float32. Raises audio.AudioError, or frontend.TooShortError for a clip under one
    example unless `pad` (zero-pads it)."""
    value = decode_for_stream(os.fspath(path), pad, stream_seconds=None)
    if isinstance(value, BaseException):
        raise value
    return value


def prefetch(items: Iterable, fn: Callable, workers: int, processes: bool = False) -> Iterator[tuple]:
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


def imported_modules(_=None) -> list[str]:
    """The modules loaded in this process (a worker's, when submitted to a pool): proof it imports no jax."""
    import sys

    return sorted(sys.modules)
