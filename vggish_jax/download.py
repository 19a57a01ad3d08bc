"""Fetching a URL into a file atomically, and file digests (callers word the one-line errors)."""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from typing import Callable

from vggish_jax import atomic


def digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def fetch_url(url: str, dest: str | os.PathLike, *, timeout: float = 60.0,
              check: Callable[[str], None] | None = None) -> str:
    """Download `url` to `dest`. The bytes go to a temporary file beside it that `check(temporary path)` may
    reject by raising; only a complete, accepted download is renamed to `dest`."""
    dest = os.fspath(dest)
    with urllib.request.urlopen(url, timeout=timeout) as r, atomic.replacing(dest, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)
        if check is not None:
            f.flush()
            check(f.name)
    return dest
