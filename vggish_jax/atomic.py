"""Atomic file writes: a temporary file in the same folder, flushed, then renamed over the target.
A reader sees the old file or the complete new one. Mode 0666 less the umask (not mkstemp's 0600).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
import threading
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to `path` (its `.name`); on success it replaces `path`, on error it is removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
    finally:
        os.close(fd)
    try:
        with open(tmp, mode) as f:  # f.name is the temporary path (callers may check it before the rename)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) and e.filename is None:
            raise OSError(e.errno, os.strerror(e.errno), path) from e  # name the file, not nothing
        raise


_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process umask (reading it means setting it, so briefly and under a lock)."""
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


def write_json(path: str | os.PathLike, obj: Any, **dump_kwargs) -> None:
    dump_kwargs.setdefault("indent", 2)
    with replacing(path, "w") as f:
        json.dump(obj, f, **dump_kwargs)


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path, "w") as f:
        f.write(text)


def savez(path: str | os.PathLike, compressed: bool = False, **arrays) -> None:
    """np.savez to exactly `path` (no '.npz' appended), atomically."""
    with replacing(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


class BusyError(RuntimeError):
    """Another live process holds a lock (the message names it)."""


_HELD = threading.local()  # lock paths this thread holds: taking one again inside is a no-op


@contextlib.contextmanager
def exclusive(lock: str | os.PathLike, what: str, error: type[Exception] = BusyError,
              writer: str = "process") -> Iterator[None]:
    """Hold the lock file `lock` (holder's pid and host written in it) while `what` is written. A second
    writer gets one `error` line naming the holder; a lock left by a dead process on this host is taken
    over. Re-entering it in the thread that holds it is allowed."""
    lock = os.path.abspath(os.fspath(lock))
    held = _HELD.__dict__.setdefault("paths", set())
    if lock in held:
        yield
        return
    tmp = f"{lock}.{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "command": _command()}, f)
    except OSError as e:  # a full disk fails at close, with no file name: name the lock
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise OSError(e.errno, e.strerror, e.filename or tmp) from e
    try:
        for _ in range(3):
            try:
                os.link(tmp, lock)  # atomic, and the lock appears with its holder already written in it
                break
            except FileExistsError:
                holder = live_holder(lock)
                if holder is None:  # stale (a dead pid on this host): take it over
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(lock)
                    continue
                raise error(f"{what}: another {writer} is writing it ({describe(holder)}, lock {lock}); wait for "
                            f"it to finish, or delete the lock if that process is gone") from None
        else:
            raise error(f"{lock}: cannot take the lock; delete it if no other {writer} writes {what}")
    finally:
        os.remove(tmp)
    held.add(lock)
    try:
        yield
    finally:
        held.discard(lock)
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock)


def _command() -> str:
    """This process's command line as a user typed it (`vggish-jax extract ...`), for a second writer to read."""
    import sys

    argv = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
    if argv[0] in ("cli.py", "__main__.py", "-m", "-c"):
        argv[0] = "vggish-jax"
    return " ".join(argv)[:300]


def describe(holder: dict) -> str:
    """A lock holder in words: its pid and host, and its command when it recorded one."""
    command = f" running `{holder['command']}`" if holder.get("command") else ""
    return f"pid {holder['pid']} on {holder['host']}{command}"


def live_holder(lock: str) -> dict | None:
    """The holder recorded in `lock`, or None when it is a dead process on this host (or unreadable)."""
    try:
        with open(lock) as f:
            holder = json.load(f)
        pid, host = int(holder["pid"]), str(holder["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, someone else's
    return {"pid": pid, "host": host, "command": holder.get("command")}

