"""On-disk embeddings of a dataset, written by the embedding core (`vggish_jax.pipeline.core`), read by experiments.

    ROOT/info.json                 EmbeddingSpec, source identity, label_names, multilabel, splits, skipped, complete
    ROOT/<split>/shard-00000.npz   track_ids [k] int64, keys [k] str, labels [k] int64 or [k, C] uint8,
                                   num_examples [k] int32, embeddings [sum(num_examples), D] float32 or uint8,
                                   identity (the job's hash), skipped (JSON), for files stamps (size:mtime)
    ROOT/.lock-<process>           while a job writes
Files are written atomically; a damaged shard is reported as ShardDamaged and recomputed by the core.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import zipfile
from typing import Any, Mapping

import numpy as np

from vggish_jax import atomic, skips, spec as spec_lib
from vggish_jax.models.vggish import params as params_lib
from vggish_jax.models.vggish.frontend import DEFAULT

INFO = "info.json"


class StoreError(ValueError):
    """A store cannot be used as asked (locked, damaged beyond recomputing); the message is one line."""


class ShardDamaged(StoreError):
    pass


@dataclasses.dataclass
class Split:
    track_ids: np.ndarray  # [clips] int64
    labels: np.ndarray  # [clips] int64, or [clips, C] uint8 multi-hot
    embeddings: list[np.ndarray]  # per clip [n_i, D]
    keys: np.ndarray | None = None  # [clips] str; None for stores written before keys existed

    def __len__(self) -> int:
        return len(self.track_ids)


def shard_path(root: str, split: str, index: int) -> str:
    return os.path.join(root, split, f"shard-{index:05d}.npz")


def shard_paths(root: str, split: str) -> list[str]:
    return sorted(p for p in glob.glob(os.path.join(root, split, "shard-*.npz")) if ".tmp" not in p)


def write_shard(path: str, track_ids, labels, embeddings: list[np.ndarray], *, keys=None, **extra) -> None:
    """One shard, atomically. `extra` arrays (identity, skipped, stamps) are stored beside the standard ones."""
    counts = np.array([e.shape[0] for e in embeddings], np.int32)
    dim = embeddings[0].shape[1] if embeddings else 128
    dtype = embeddings[0].dtype if embeddings else np.float32
    flat = np.concatenate(embeddings) if embeddings else np.zeros((0, dim), dtype)
    labels = np.asarray(labels)
    labels = labels.astype(np.uint8) if labels.ndim == 2 else labels.astype(np.int64).reshape(-1)
    keys = np.asarray([str(k) for k in (keys if keys is not None else [])], dtype=str)
    atomic.savez(path, track_ids=np.asarray(track_ids, np.int64).reshape(-1), keys=keys, labels=labels,
                 num_examples=counts, embeddings=flat, **{k: np.asarray(v) for k, v in extra.items()})


def read_shard(path: str) -> Split:
    """A shard's clips; a file that cannot be read as one raises ShardDamaged naming it."""
    z = shard_arrays(path)
    offsets = np.concatenate([[0], np.cumsum(z["num_examples"])])
    return Split(z["track_ids"], z["labels"], [z["embeddings"][a:b] for a, b in zip(offsets[:-1], offsets[1:])],
                 z.get("keys"))


def shard_arrays(path: str) -> dict[str, np.ndarray]:
    """Every array of a shard (reading each checks its CRC: a cut-off member fails); else ShardDamaged (one
    line, the file named)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        missing = [k for k in ("track_ids", "labels", "num_examples", "embeddings") if k not in arrays]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ShardDamaged(f"{path}: damaged shard ({type(e).__name__}: {skips.one_line(e)})") from None
    return arrays


def load_split(root: str, split: str) -> Split:
    """All shards of one split, concatenated in shard order (shards without `keys`, from older stores, too)."""
    paths = shard_paths(root, split)
    if not paths:
        raise FileNotFoundError(f"{os.path.join(root, split)}: no embedding shards; run `vggish-jax extract` first")
    parts = [read_shard(p) for p in paths]
    keys = None if any(p.keys is None for p in parts) else np.concatenate([p.keys for p in parts])
    return Split(np.concatenate([p.track_ids for p in parts]), np.concatenate([p.labels for p in parts]),
                 [e for p in parts for e in p.embeddings], keys)


def write_info(root: str, info: dict) -> None:
    atomic.write_json(os.path.join(root, INFO), info, indent=2, sort_keys=True)


def read_info(root: str, finished: bool = False) -> dict:
    path = os.path.join(root, INFO)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: missing; {root} is not an embeddings directory from `vggish-jax extract`")
    try:
        with open(path) as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise StoreError(f"{path}: damaged ({type(e).__name__}: {e}); rerun the command that wrote {root} "
                         f"to rewrite it".replace("\n", " ")) from None
    if not isinstance(info, dict):
        raise StoreError(f"{path}: damaged (not a JSON object); rerun the command that wrote {root} to rewrite it")
    if finished and not info.get("complete", False):  # the one check that a store is complete (load, stored.read)
        raise RuntimeError(f"{root}: extraction did not finish; rerun the same `vggish-jax extract` command to "
                           f"complete it")
    return info


def load(root: str, split: str) -> Split:
    """One split of a finished store; refuses an unfinished one (rerun the command to complete it)."""
    read_info(root, finished=True)
    return load_split(root, split)


# ---- one writer per output ----

@contextlib.contextmanager
def locked(root: str, process: int = 0, what: str | None = None):
    """Hold ROOT/.lock-<process> while writing (`atomic.exclusive`); each process of a multi-host job holds its own."""
    os.makedirs(root, exist_ok=True)
    with atomic.exclusive(os.path.join(root, f".lock-{process}"), what or root, StoreError, "run"):
        yield


def writer(root: str) -> str | None:
    """The live writer holding one of ROOT's locks, in words, or None."""
    for path in sorted(glob.glob(os.path.join(root, ".lock-*"))):
        if not path.endswith(".tmp") and (holder := atomic.live_holder(path)) is not None:
            return f"{atomic.describe(holder)}, lock {path}"
    return None


def weights_metadata(weights_dir: str | None) -> dict:
    """metadata.json of a weights folder (`params.save` writes it beside the checkpoint), {} without one."""
    try:
        with open(os.path.join(weights_dir, params_lib.METADATA)) as f:
            meta = json.load(f)
    except (TypeError, OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def spec_of(info: Mapping[str, Any], source: str) -> spec_lib.EmbeddingSpec:
    """The spec of an extraction (its info.json dict): as recorded, or rebuilt from an older one's settings and
    the weights hash from its metadata or weights folder (None when neither has it)."""
    if spec_lib.KEY in info:
        return spec_lib.read(info, source)
    sha = ((info.get("weights_metadata") or {}).get("weights_sha256")
           or weights_metadata(info.get("weights")).get("weights_sha256"))
    frontend = info.get("frontend") or DEFAULT  # the first extractions recorded none: they used the default
    # Older extractions wrote "device float32" / "device float64" / "numpy float64 (at build)".
    old = str(info.get("frontend_precision", "float32"))
    precision = "numpy" if old.startswith("numpy") else "float64" if "float64" in old else "float32"
    return spec_lib.EmbeddingSpec.create(weights_sha256=sha, final_relu=bool(info.get("final_relu", False)),
                                         postprocess=bool(info.get("postprocess", False)),
                                         dtype=info.get("dtype", "float32"), frontend=frontend,
                                         frontend_precision=precision)
