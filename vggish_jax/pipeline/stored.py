"""The one reader of stored embeddings: `read(path)` -> Stored, from either kind of output this project writes.

  * `vggish-jax embed ... --out OUT`: OUT/embeddings.npz (one [n, 128] array per file) with its .json sidecar
    (the EmbeddingSpec, each row's start time, the skipped files); keys are the files' paths.
  * `vggish-jax extract ... --out STORE` (pipeline.store): info.json + <split>/shard-*.npz; keys are
    '<split>/<track_id>'. `splits` narrows it to some splits (FAD takes one split's folder).
Every row set comes back as an `Embeddings` (values, start_s, spec), as `vggish_jax.embed` returns them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import numpy as np

from vggish_jax import spec as spec_lib
from vggish_jax.models.vggish import frontend
from vggish_jax.pipeline import store


class StoredError(ValueError):
    """Stored embeddings that cannot be read; one line naming the path and the fix."""


@dataclasses.dataclass(frozen=True)
class Stored:
    kind: str  # 'embed' (OUT.npz) or 'extract' (a store)
    path: str  # what was read: OUT.npz or the store's root
    spec_from: str  # the file the spec comes from: OUT.json or info.json
    spec: spec_lib.EmbeddingSpec
    embeddings: dict  # key -> Embeddings, in stored order
    skipped: dict[str, str]  # key -> one-line reason
    meta: dict  # the sidecar or info.json as read


def _embeddings(values: np.ndarray, start_s, spec):
    from vggish_jax.pipeline.embeddings import Embeddings

    hop = frontend.example_hop_seconds(frontend.config_of(spec.frontend))  # the hop the rows were made with
    start = np.arange(values.shape[0]) * hop if start_s is None else np.asarray(start_s, np.float64)
    return Embeddings(values=values, start_s=start, spec=spec)


def read_npz(path: str) -> Stored:
    """An `embed` output: OUT.npz and its OUT.json sidecar."""
    sidecar = path[:-4] + ".json"
    if not os.path.isfile(sidecar):
        raise StoredError(f"{path}: no {os.path.basename(sidecar)} next to it, so how it was embedded is unknown; "
                          f"rerun `vggish-jax embed FILES --weights DIR --out OUT` (it writes both)")
    try:
        with open(sidecar) as f:
            meta = json.load(f)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise StoredError(f"{path}: cannot read the embeddings ({type(e).__name__}: {e}); rerun "
                          f"`vggish-jax embed FILES --weights DIR --out OUT`") from e
    spec = spec_lib.read(meta, sidecar)
    starts = meta.get("start_s") or {}
    embeddings = {k: _embeddings(v, starts.get(k), spec) for k, v in arrays.items()}
    skipped = {p: str(r) for p, r in (meta.get("errors") or {}).items()}
    return Stored("embed", path, sidecar, spec, embeddings, skipped, meta)


def read_store(root: str, splits: list[str] | None = None) -> Stored:
    """A finished extract store (all splits, or `splits`)."""
    info = store.read_info(root, finished=True)
    info_path = os.path.join(root, store.INFO)
    spec = store.spec_of(info, info_path)
    splits = splits or sorted(info.get("splits") or [])
    embeddings = {}
    for split in splits:
        data = store.load_split(root, split)
        for tid, e in zip(data.track_ids, data.embeddings):
            embeddings[f"{split}/{int(tid)}"] = _embeddings(e, None, spec)
    skipped = {f"{d.get('split', '?')}/{d.get('track_id', '?')}": str(d.get("reason", "skipped by extract"))
               for d in info.get("skipped", []) if d.get("split") in splits}
    return Stored("extract", root, info_path, spec, embeddings, skipped, info)


def read(path: str | os.PathLike, splits: list[str] | None = None) -> Stored:
    """Stored embeddings from an `embed` OUT.npz or an extract store's root folder (see the module doc)."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, store.INFO)):
        return read_store(path, splits)
    if path.endswith(".npz"):
        return read_npz(path)
    raise StoredError(f"{path}: neither an `embed` output (OUT.npz) nor an extract store (a folder with "
                      f"{store.INFO}); pass one of those")
