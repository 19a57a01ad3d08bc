"""A saved head's scores on a labelled embeddings store (`vggish-jax predict --head H --embeddings STORE`).

The store's EmbeddingSpec and classes must be the head's; scored as the table (classify.metrics).
"""
from __future__ import annotations

import os

import numpy as np

from vggish_jax import spec as spec_lib
from vggish_jax.classify import heads, metrics
from vggish_jax.pipeline import store


def evaluate_head(head_dir: str, store_dir: str, split: str = "test") -> dict:
    head = heads.load_head(head_dir)
    head_json = os.path.join(head_dir, "head.json")
    info = store.read_info(store_dir)
    info_path = os.path.join(store_dir, store.INFO)
    if head.spec is None:
        raise spec_lib.SpecMismatch(f"{head_json}: records no embedding spec (written by an older vggish-jax); "
                                    f"retrain it with `vggish-jax compare`")
    spec_lib.require_compatible(head.spec, store.spec_of(info, info_path), expected_from=head_json,
                                found_from=info_path)
    names = list(info["label_names"])
    if names != list(head.label_names):
        raise ValueError(f"{info_path} labels {names[:4]}... but head {head_json} predicts "
                         f"{list(head.label_names)[:4]}...; score a head on a store of the same classes")
    if not store.shard_paths(store_dir, split):  # e.g. a cross-validation store: one split 'all'
        have = sorted(d for d in os.listdir(store_dir) if store.shard_paths(store_dir, d))
        if have:
            raise ValueError(f"{store_dir}: has no {split!r} split to score the head on (its splits: "
                             f"{', '.join(have)}); --embeddings scores a held-out split: give a store that has a "
                             f"{split} split (`vggish-jax extract --dataset fma/small`, a GTZAN folder with "
                             f"`--split gtzan-filtered`, or a labels CSV with a split column)")
    data = store.load_split(store_dir, split)
    probs = head.predict_proba([np.asarray(e, np.float32) for e in data.embeddings])
    y = np.asarray(data.labels)
    r = {"head": os.path.abspath(head_dir), "embeddings": os.path.abspath(store_dir), "split": split,
         "clips": len(y), "label_names": names}
    r.update(metrics.score_pair(y, probs if y.ndim == 2 else probs.argmax(-1)))
    return r


def describe(r: dict) -> str:
    scores = ", ".join(f"{k} {r[k]:.4f}" for k in ("accuracy", "macro_f1", "mAP", "roc_auc") if k in r)
    return f"{r['head']} on {r['embeddings']} ({r['split']}, {r['clips']} clips): {scores}"
