"""EmbeddingSpec: the one record of how an embedding was made, written with every artifact and checked on use.

Stored under "embedding_spec"; consumers call `require_compatible(expected, found, ...)`, which refuses a
mismatch with one line naming both sides. Weights are identified by content hash, never a path. No jax.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping

import numpy as np

KEY = "embedding_spec"
# Fields that decide the numbers. `dtype` and `frontend_precision` are informative (they change rounding only:
# bfloat16 vs float32 by up to ~1%, the float32 vs float64 frontend by ~1e-3 in log-mel), so a head or FAD
# statistics made one way serve the other; they are compared where rows are mixed into one output
# (RESUME_FIELDS: an extraction resumed, an embed output extended).
IDENTITY_FIELDS = ("model", "weights_sha256", "final_relu", "postprocess", "frontend")
RESUME_FIELDS = IDENTITY_FIELDS + ("dtype", "frontend_precision")
# What computed the log-mel: the device frontend in float32 or float64, or the NumPy oracle (float64) on the
# host (stored-mel datasets).
FRONTEND_PRECISIONS = ("float32", "float64", "numpy")


class SpecMismatch(ValueError):
    """Two artifacts (or an artifact and a request) were made differently; the message names both sides."""


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    model: str = "vggish"
    weights_sha256: str | None = None  # content hash of the converted parameters (see params_sha256)
    final_relu: bool = False
    postprocess: str | None = None  # None: raw float embeddings; "pca_uint8_truncate" / "pca_uint8_round"
    dtype: str = "float32"
    frontend: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs of the frontend config
    frontend_precision: str = "float32"  # one of FRONTEND_PRECISIONS

    @classmethod
    def create(cls, *, model: str = "vggish", weights_sha256: str | None, final_relu: bool,
               postprocess: str | bool | None = None, dtype: str = "float32",
               frontend: Any = None, frontend_precision: str = "float32") -> "EmbeddingSpec":
        """Build a spec; `frontend` is a dataclass config or a mapping, `postprocess=True` means TF's truncation."""
        if frontend_precision not in FRONTEND_PRECISIONS:
            raise ValueError(f"frontend_precision must be one of {FRONTEND_PRECISIONS}, got {frontend_precision!r}")
        return cls(model=model, weights_sha256=weights_sha256, final_relu=bool(final_relu), dtype=str(dtype),
                   frontend_precision=frontend_precision).replace(postprocess=postprocess, frontend=frontend)

    def replace(self, **changes) -> "EmbeddingSpec":
        if "frontend" in changes:
            changes["frontend"] = frontend_items(changes["frontend"])
        if isinstance(changes.get("postprocess"), bool):  # True: TF's truncation
            changes["postprocess"] = "pca_uint8_truncate" if changes["postprocess"] else None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["frontend"] = dict(self.frontend)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EmbeddingSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SpecMismatch(f"embedding spec has unknown fields {sorted(unknown)}; written by a newer vggish-jax?")
        return cls(**{**d, "frontend": frontend_items(d.get("frontend"))})

    def describe(self) -> str:
        sha = (self.weights_sha256 or "unknown")[:12]
        return (f"{self.model} weights {sha} final_relu={self.final_relu} "
                f"postprocess={self.postprocess or 'none'} dtype={self.dtype} frontend={self.frontend_precision}")


def frontend_items(frontend: Any) -> tuple[tuple[str, Any], ...]:
    """Sorted (name, value) pairs of a frontend config (a dataclass, a mapping or such pairs). `pad_last` is
    recorded only when set, so a default run's spec is the one every earlier version stored (the hop is
    recorded as `example_hop_frames`, which every spec already holds)."""
    if dataclasses.is_dataclass(frontend):
        frontend = dataclasses.asdict(frontend)
    d = dict(frontend or {})
    if not d.get("pad_last", True):
        del d["pad_last"]
    return tuple(sorted(d.items()))


def require_compatible(expected: EmbeddingSpec, found: EmbeddingSpec, *, expected_from: str, found_from: str,
                       fields=IDENTITY_FIELDS) -> None:
    """Raise SpecMismatch (one line, naming both sides and the differing fields) unless the specs agree."""
    a, b = expected.to_dict(), found.to_dict()
    parts = "; ".join(f"{k}: {_short(a[k])} ({expected_from}) vs {_short(b[k])} ({found_from})"
                      for k in fields if a[k] != b[k])
    if parts:
        raise SpecMismatch(f"{found_from} was made differently from {expected_from}: {parts}")


def read(artifact: Mapping[str, Any], source: str) -> EmbeddingSpec:
    """The spec stored in an artifact's JSON (a dict with KEY), or a clear error if it has none."""
    if KEY not in artifact:
        raise SpecMismatch(f"{source}: records no embedding spec (written by an older vggish-jax); "
                           f"recreate it with this version")
    return EmbeddingSpec.from_dict(artifact[KEY])


def params_sha256(tree: Mapping[str, Any]) -> str:
    """Content hash of a parameter tree: names, dtypes, shapes and bytes, in sorted order (path-independent)."""
    h = hashlib.sha256()

    def visit(prefix: str, node):
        if isinstance(node, Mapping):
            for k in sorted(node):
                visit(f"{prefix}/{k}", node[k])
            return
        a = np.ascontiguousarray(np.asarray(node))
        h.update(json.dumps([prefix, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())

    visit("", tree)
    return h.hexdigest()


def _short(v) -> str:
    if isinstance(v, str) and len(v) == 64:  # a hash: the prefix is enough to tell them apart
        return v[:12]
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return repr(v)
