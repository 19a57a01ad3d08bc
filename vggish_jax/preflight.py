"""Checks that run before the first file is touched; each raises a one-line OutputError naming the path and fix."""
from __future__ import annotations

import contextlib
import os
import tempfile


class OutputError(ValueError):
    """An output path that cannot be written."""


def output_dir(path: str | os.PathLike, *, flag: str = "--out") -> str:
    """Absolute path of an output folder that exists and is writable, or can be created under one that is."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"{path}: is a file, not a folder; choose another {flag}")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise OutputError(f"{existing}: is a file, so {path} cannot be created; fix {flag}")
    # os.access is not enough (root, read-only mounts, ACLs): create and remove a file.
    try:
        fd, tmp = tempfile.mkstemp(dir=existing, prefix=".vggish-jax-probe-")
    except OSError as e:
        raise OutputError(f"{existing}: cannot write here ({e.strerror}); choose another {flag}") from e
    os.close(fd)
    with contextlib.suppress(OSError):
        os.remove(tmp)
    return path
