"""On-disk embeddings of a dataset: written by `vggish-jax extract`, read by experiments.

Layout:
    ROOT/info.json                    {"label_names": [...], "final_relu": bool, "postprocess": bool, ...}
    ROOT/<split>/shard-00000.npz      one shard: track_ids [k] int64, labels [k] int64,
                                      num_examples [k] int32, embeddings [sum(num_examples), D] (float32 or uint8)
Clip i of a shard owns rows offsets[i]:offsets[i+1] of `embeddings`. Every file is written atomically
(vggish_jax.atomic), so a shard either exists complete or not at all.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os

import numpy as np

from vggish_jax import atomic

INFO = "info.json"


@dataclasses.dataclass
class Split:
    track_ids: np.ndarray  # [clips] int64
    labels: np.ndarray  # [clips] int64
    embeddings: list[np.ndarray]  # per clip [n_i, D]

    def __len__(self) -> int:
        return len(self.track_ids)


def shard_path(root: str, split: str, index: int) -> str:
    return os.path.join(root, split, f"shard-{index:05d}.npz")


def write_shard(path: str, track_ids, labels, embeddings: list[np.ndarray]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    counts = np.array([e.shape[0] for e in embeddings], np.int32)
    dim = embeddings[0].shape[1] if embeddings else 128
    dtype = embeddings[0].dtype if embeddings else np.float32
    flat = np.concatenate(embeddings) if embeddings else np.zeros((0, dim), dtype)
    atomic.savez(path, track_ids=np.asarray(track_ids, np.int64), labels=np.asarray(labels, np.int64),
                 num_examples=counts, embeddings=flat)


def read_shard(path: str) -> Split:
    with np.load(path) as z:
        offsets = np.concatenate([[0], np.cumsum(z["num_examples"])])
        flat = z["embeddings"]
        return Split(z["track_ids"], z["labels"], [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])])


def load_split(root: str, split: str) -> Split:
    """All shards of one split, concatenated in shard order."""
    paths = sorted(glob.glob(os.path.join(root, split, "shard-*.npz")))
    paths = [p for p in paths if not p.endswith(".tmp.npz")]
    if not paths:
        raise FileNotFoundError(f"{os.path.join(root, split)}: no embedding shards; run `vggish-jax extract` first")
    parts = [read_shard(p) for p in paths]
    return Split(np.concatenate([p.track_ids for p in parts]), np.concatenate([p.labels for p in parts]),
                 [e for p in parts for e in p.embeddings])


def write_info(root: str, info: dict) -> None:
    atomic.write_json(os.path.join(root, INFO), info, indent=2, sort_keys=True)


def read_info(root: str) -> dict:
    path = os.path.join(root, INFO)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: missing; {root} is not an embeddings directory from `vggish-jax extract`")
    with open(path) as f:
        return json.load(f)
