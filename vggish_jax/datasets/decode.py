"""Decoding dataset clips in worker processes (no tensorflow_datasets import, so workers stay light)."""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterable, Iterator

import numpy as np

from vggish_jax.audio import decode as audio_decode
from vggish_jax.audio.files import AudioError
from vggish_jax.models.vggish import frontend


def decode_clip(path: str, waveform: bool = False) -> dict | str:
    """{'mel': [n, 96, 64] float32 (+ 'waveform': int16 at 16 kHz)} or a one-line error naming the file (never
    raises). With `waveform`, 'mel' is that of the stored int16 audio, so the record is self-consistent."""
    try:
        if not waveform:
            return {"mel": frontend.file_examples(path)}
        wave = to_int16(np.concatenate(list(audio_decode.stream(path, frontend.DEFAULT.sample_rate))))
        mel = frontend.waveform_to_examples(from_int16(wave), frontend.DEFAULT.sample_rate, name=path)
        return {"mel": mel, "waveform": wave}
    except (AudioError, frontend.TooShortError) as e:
        return str(e)
    except Exception as e:  # a decoder crash on one file must not stop the whole build
        return f"{path}: cannot decode ({type(e).__name__}: {e}); the file is corrupt"


INT16_SCALE = 32767.0  # full scale of the stored int16 audio (not soundfile's 32768)


def to_int16(wave: np.ndarray) -> np.ndarray:
    return np.round(np.clip(wave, -1.0, 1.0) * INT16_SCALE).astype(np.int16)


def from_int16(wave: np.ndarray) -> np.ndarray:
    """Stored int16 audio back to float64 in [-1, 1]: the inverse scale of `to_int16`, as the device path uses."""
    return wave.astype(np.float64) / INT16_SCALE


def process_pool(workers: int) -> cf.Executor | None:
    """A spawn-context process pool (fork is unsafe once JAX threads exist) whose workers die with this
    process, or None for in-process work."""
    if workers <= 0:
        return None
    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent_pid: int, poll_seconds: float = 0.5) -> None:
    """Pool initializer: end this worker when `parent_pid` dies, however it dies (Linux: PR_SET_PDEATHSIG;
    everywhere: a thread that exits once the worker is re-parented, also if the parent died before prctl)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def ordered_map(fn: Callable, items: Iterable, executor: cf.Executor | None, ahead: int) -> Iterator:
    """fn(item) for each item, in order; with an executor up to `ahead` calls run in the background."""
    if executor is None:
        for item in items:
            yield fn(item)
        return
    pending: collections.deque = collections.deque()
    for item in items:
        with sigterm_held():  # a submit may start a worker
            pending.append(executor.submit(fn, item))
        if len(pending) >= max(1, ahead):
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@contextlib.contextmanager
def sigterm_held():
    """SIGTERM handled when the block ends, not inside it. The CLI turns SIGTERM into an exception, and one
    raised while a spawn worker's start-up data is half written leaves that worker dying with a pickle
    traceback ("Ran out of input") on the user's terminal."""
    caught, swapped = [], threading.current_thread() is threading.main_thread()
    if swapped:  # elsewhere the handler is not ours to swap (and it runs in the main thread anyway)
        handler = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        if swapped:
            signal.signal(signal.SIGTERM, handler)
            if caught and callable(handler):
                handler(signal.SIGTERM, caught[0])
            elif caught and handler == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGTERM)


def default_workers() -> int:
    return max(1, (os.cpu_count() or 2) - 1)
