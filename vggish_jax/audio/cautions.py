"""Cautions (a file used as given, e.g. truncated and kept, over-range): printed once as `warning: ...` and
handed to every active `collect_cautions` list; workers send theirs back (`with_cautions`).
"""
from __future__ import annotations

import contextlib
import sys
import threading
from typing import Iterator

from vggish_jax import skips

_CAUTION_SINKS: list[list[skips.Caution]] = []
_SINKS_LOCK = threading.Lock()
_LOCAL = threading.local()  # .deferred: in a decode worker process, whose parent prints its Cautions


def report_caution(c: skips.Caution) -> None:
    """Print one `warning: ...` line to stderr and hand the record to every active `collect_cautions`."""
    if not getattr(_LOCAL, "deferred", False):
        print(c.line(), file=sys.stderr, flush=True)
    with _SINKS_LOCK:
        for sink in _CAUTION_SINKS:
            sink.append(c)


def forward_cautions(cautions: list[skips.Caution]) -> None:
    """Print the Cautions reported in a decode worker process here (where the command's stderr is, in
    order with its other lines), and hand them to this process's collectors."""
    for c in cautions:
        print(c.line(), file=sys.stderr, flush=True)
    with _SINKS_LOCK:
        for sink in _CAUTION_SINKS:
            sink.extend(cautions)


def with_cautions(fn, item):
    """(fn(item), the Cautions it reported): what a decode worker process returns, so the parent can
    `forward_cautions` them (prints them, and lists them in its report: a process's collectors cannot see
    another's). Not printed here unless fn raises."""
    _LOCAL.deferred = True
    try:
        with collect_cautions() as cautions:
            value = fn(item)
    except BaseException:
        for c in cautions:  # the parent gets the exception only: say them here
            print(c.line(), file=sys.stderr, flush=True)
        raise
    finally:
        _LOCAL.deferred = False
    return value, list(cautions)


@contextlib.contextmanager
def collect_cautions() -> Iterator[list[skips.Caution]]:
    """A list that receives every Caution reported in this process (any thread) while the block runs, so a
    command can list them in its report. Decode worker processes send theirs back (`with_cautions`)."""
    sink: list[skips.Caution] = []
    with _SINKS_LOCK:
        _CAUTION_SINKS.append(sink)
    try:
        yield sink
    finally:
        with _SINKS_LOCK:
            _CAUTION_SINKS.remove(sink)
