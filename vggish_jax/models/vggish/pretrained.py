"""Converted weights on disk: an orbax checkpoint of params (+ PCA) and a small JSON of provenance.

Layout of a weights directory:
    DIR/params/       orbax StandardCheckpointer tree {'params': <vggish layout>, 'pca': {...}} (pca optional)
    DIR/metadata.json {"model": "vggish", "source": ..., "hashes": {...}, "final_relu": bool, ...}
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import orbax.checkpoint as ocp

from vggish_jax import atomic
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.postprocess import PCAParams
from vggish_jax.spec import params_sha256

METADATA = "metadata.json"
TREE = "params"


def save(directory: str | os.PathLike, params: dict, *, pca: PCAParams | None = None,
         metadata: dict[str, Any] | None = None, model: str = "vggish") -> str:
    """Write params (+ PCA) and metadata under `directory` (created; an existing checkpoint is replaced)."""
    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(directory, exist_ok=True)
    tree: dict[str, Any] = {"params": _np_tree(params)}
    if pca is not None:
        tree["pca"] = {"eigen_vectors": pca.eigen_vectors.astype(np.float32), "means": pca.means.astype(np.float32)}
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(directory, TREE), tree, force=True)
        ckptr.wait_until_finished()
    # The weights' identity is their content, recorded here so every artifact made with them can name it.
    meta = {"model": model, "has_pca": pca is not None, **(metadata or {}),
            "weights_sha256": params_sha256(tree["params"])}
    atomic.write_json(os.path.join(directory, METADATA), meta, sort_keys=True)
    return directory


def load(directory: str | os.PathLike) -> tuple[dict, PCAParams | None, dict]:
    """(params, pca or None, metadata) from a weights directory written by `save`."""
    directory = os.path.abspath(os.fspath(directory))
    tree_dir = os.path.join(directory, TREE)
    if not os.path.isdir(tree_dir):
        raise WeightsError(
            f"{directory}: no converted weights here; run `vggish-jax convert --download torch --out {directory}` "
            f"(needs internet) or `vggish-jax convert --torch-weights vggish-10086976.pth --out {directory}`")
    meta_path = os.path.join(directory, METADATA)
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    try:
        with ocp.StandardCheckpointer() as ckptr:
            tree = ckptr.restore(tree_dir)
    except Exception as e:
        raise WeightsError(f"{tree_dir}: cannot read the checkpoint ({type(e).__name__}: {e}); "
                           f"re-run `vggish-jax convert`") from e
    tree = _np_tree(tree)
    if "weights_sha256" not in meta:  # written before the hash was recorded
        meta["weights_sha256"] = params_sha256(tree["params"])
    pca = None
    if "pca" in tree:
        pca = PCAParams(tree["pca"]["eigen_vectors"], tree["pca"]["means"])
    return tree["params"], pca, meta


def _np_tree(tree):
    if isinstance(tree, dict):
        return {k: _np_tree(v) for k, v in tree.items()}
    return np.asarray(tree)
