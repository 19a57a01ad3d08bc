"""Resumable per-file output for `vggish-jax embed`: finished files survive Ctrl-C, SIGTERM, SIGKILL and errors.

On disk, for `--out OUT.npz`:
    OUT.npz          one array per file, keyed by its path (np.load-able, as before)
    OUT.json         sidecar: the EmbeddingSpec, settings, files, errors of the last run, "complete"
    OUT.npz.parts/   only while a run is going (or after a SIGKILL): manifest.json (the spec, written first)
                     and part-NNNNN.npz, each holding the files finished since the previous part, written
                     atomically every `flush_every` files or `flush_seconds`.
At the end (also after Ctrl-C, SIGTERM or an error) the parts and any earlier OUT.npz are merged into a new
OUT.npz (written atomically, streamed array by array), then OUT.json, then the parts folder is removed. A rerun
with the same spec skips every file found in OUT.npz or in leftover parts; a different spec is refused.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import time
import zipfile
from typing import Iterable, Iterator

import numpy as np

from vggish_jax import atomic, skips, spec as spec_lib

MANIFEST = "manifest.json"


def out_paths(out: str) -> tuple[str, str, str]:
    """(OUT.npz, OUT.json, OUT.npz.parts) for an --out value (".npz" appended if missing)."""
    npz = out if out.endswith(".npz") else out + ".npz"
    return npz, npz[:-4] + ".json", npz + ".parts"


class EmbeddingOutput:
    """Collects per-file embeddings into OUT.npz incrementally; see the module docstring for the layout."""

    def __init__(self, out: str, spec: spec_lib.EmbeddingSpec, *, settings: dict | None = None,
                 flush_every: int = 16, flush_seconds: float = 60.0):
        self.npz, self.sidecar, self.parts = out_paths(os.path.abspath(out))
        self.spec, self.settings = spec, dict(settings or {})
        self.flush_every, self.flush_seconds = max(1, flush_every), flush_seconds
        self._pending: dict[str, np.ndarray] = {}
        self._last_flush = time.monotonic()
        self.errors: dict[str, str] = {}
        self.written: list[str] = []  # embedded in this run
        self._check_existing()
        self.done = self._finished_files()

    # -- before the first file -------------------------------------------------------------------------
    def _check_existing(self) -> None:
        here = f"this run ({self.spec.describe()})"
        manifest = os.path.join(self.parts, MANIFEST)
        if os.path.exists(manifest):
            with open(manifest) as f:
                found = spec_lib.read(json.load(f), manifest)
            spec_lib.require_compatible(self.spec, found, expected_from=here, found_from=self.parts)
        if os.path.exists(self.npz):
            if not os.path.exists(self.sidecar):
                raise spec_lib.SpecMismatch(f"{self.npz}: exists without {os.path.basename(self.sidecar)}, so how it "
                                            f"was made is unknown; delete it or choose another --out")
            with open(self.sidecar) as f:
                found = spec_lib.read(json.load(f), self.sidecar)
            spec_lib.require_compatible(self.spec, found, expected_from=here, found_from=self.npz)

    def _finished_files(self) -> set[str]:
        done: set[str] = set()
        for path in self._sources():
            try:
                with np.load(path) as z:
                    done.update(z.files)
            except Exception:  # a part cut short by a kill before its rename cannot exist; anything else: redo
                continue
        return done

    def _sources(self) -> list[str]:
        parts = sorted(glob.glob(os.path.join(self.parts, "part-*.npz")))
        return ([self.npz] if os.path.exists(self.npz) else []) + parts

    # -- while running ---------------------------------------------------------------------------------
    def todo(self, paths: Iterable[str]) -> list[str]:
        return [p for p in paths if p not in self.done]

    def add(self, path: str, result: np.ndarray | str) -> None:
        if isinstance(result, str):
            self.errors[path] = result
            return
        self._pending[path] = result
        self.written.append(path)
        if len(self._pending) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the files finished since the last flush as one part (atomically)."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        os.makedirs(self.parts, exist_ok=True)
        manifest = os.path.join(self.parts, MANIFEST)
        if not os.path.exists(manifest):
            atomic.write_json(manifest, {spec_lib.KEY: self.spec.to_dict()})
        index = len(glob.glob(os.path.join(self.parts, "part-*.npz")))
        while os.path.exists(os.path.join(self.parts, f"part-{index:05d}.npz")):
            index += 1
        atomic.savez(os.path.join(self.parts, f"part-{index:05d}.npz"), **self._pending)
        self.done.update(self._pending)
        self._pending = {}

    # -- at the end ------------------------------------------------------------------------------------
    def finish(self, files: list[str], complete: bool) -> int:
        """Flush, merge parts and the old OUT.npz into OUT.npz, write OUT.json, drop the parts. Returns #arrays."""
        self.flush()
        sources = self._sources()
        if not sources:
            return 0
        keys = _write_merged(self.npz, sources)
        meta = {**self.settings, spec_lib.KEY: self.spec.to_dict(), "complete": complete, "files": keys,
                "errors": self.errors, "requested": files}
        atomic.write_json(self.sidecar, meta)
        shutil.rmtree(self.parts, ignore_errors=True)
        return len(keys)


def _write_merged(dest: str, sources: list[str]) -> list[str]:
    """Stream the arrays of several .npz files (first occurrence of a key wins) into one .npz at `dest`."""
    keys: list[str] = []
    with contextlib.ExitStack() as stack:
        loaded = [stack.enter_context(np.load(s)) for s in sources]
        with atomic.replacing(dest, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            seen = set()
            for z in loaded:
                for k in z.files:
                    if k in seen:
                        continue
                    seen.add(k)
                    keys.append(k)
                    with zf.open(k + ".npy", "w", force_zip64=True) as entry:
                        np.lib.format.write_array(entry, np.asanyarray(z[k]), allow_pickle=False)
    return keys


def iter_embeddings(embedder, paths: list[str], *, pad: bool, workers: int,
                    postprocess: bool) -> Iterator[tuple[str, np.ndarray | str]]:
    """(path, [n, 128] or a one-line error) per file, in input order, as files finish (Embedder.iter_files)."""
    return ((p, v.reason if isinstance(v, skips.Skip) else v)  # the Skip record as the one line it carries
            for p, v in embedder.iter_files(paths, pad=pad, workers=workers, postprocess=postprocess))
