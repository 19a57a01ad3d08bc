"""A saved head's files: written (`write`), then read and checked against each other before use (`read`, `check`).

head.npz: the feature mean/scale and each layer's [m{j}_]layer{i}_kernel/bias (m{j}_: a JAX-frames member);
head.json: label names, feature, kind ("frames" or absent), pooling (absent: mean), the training embeddings'
EmbeddingSpec, weights, config and history. An inconsistent head would predict nonsense (or fail deep in a
matrix product), so it is refused with one line naming the file and the fix; a pickle is refused, never run.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib

import numpy as np

from vggish_jax import atomic, spec as spec_lib

FIXES = {"mean_std": "retrain it with `vggish-jax compare --embeddings EMB --out RUN --features mean_std "
                     "--classifiers JAX-MLP` (which writes RUN/head) or restore the head folder from a copy",
         "frames": "retrain it with `vggish-jax compare --embeddings EMB --out RUN --features frames "
                   "--classifiers JAX-frames` (which writes RUN/head_frames) or restore the head folder from a copy"}


class BadHead(ValueError):
    """A head folder that cannot be used; the message names the file and the fix."""


def read(directory: str) -> tuple[dict, dict]:
    """(head.json as a dict, head.npz's arrays), or a one-line error naming the file that is unusable."""
    npz, js = os.path.join(directory, "head.npz"), os.path.join(directory, "head.json")
    if not (os.path.exists(npz) and os.path.exists(js)):
        raise FileNotFoundError(f"{directory}: no head.npz/head.json; train one with `vggish-jax compare "
                                f"--embeddings EMB --out RUN --features mean_std --classifiers JAX-MLP`, "
                                f"which writes RUN/head")
    try:
        with open(js, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise BadHead(f"{js}: not a valid head.json ({' '.join(str(e).split())}); {FIXES['mean_std']}") from None
    if not isinstance(meta, dict):
        raise BadHead(f"{js}: holds a JSON {type(meta).__name__}, not a head description; {FIXES['mean_std']}")
    fix = _fix(meta)
    try:
        with np.load(npz) as z:  # allow_pickle stays False: a pickle is refused, never run
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except ValueError as e:
        if "pickle" not in str(e):
            raise BadHead(f"{npz}: unreadable ({' '.join(str(e).split())}); {fix}") from None
        raise BadHead(f"{npz}: is a Python pickle, not a NumPy .npz of arrays (not loaded: a pickle can run "
                      f"code); {fix}") from None
    except AttributeError:  # a bare .npy array: np.load returns an ndarray, which is no context of files
        raise BadHead(f"{npz}: holds one bare array, not the .npz archive a head is saved as; {fix}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise BadHead(f"{npz}: unreadable, truncated or damaged ({' '.join(str(e).split()) or type(e).__name__}); "
                      f"{fix}") from None
    return meta, arrays


def layer_keys(prefixes, n_layers: int) -> list[list[tuple[str, str]]]:
    """Per member (one per prefix: "" for the MLP head, "m{j}_" for ensemble members), its layers' array names."""
    return [[(f"{p}layer{i}_kernel", f"{p}layer{i}_bias") for i in range(n_layers)] for p in prefixes]


def layers(arrays: dict, keys: list[list[tuple[str, str]]]) -> list[list[dict]]:
    return [[{"kernel": arrays[k], "bias": arrays[b]} for k, b in member] for member in keys]


def write(directory: str, head, members: list[list[dict]], prefixes, **meta) -> str:
    """head.npz (mean, scale, the members' layers) and head.json (`meta` and what every head records)."""
    os.makedirs(directory, exist_ok=True)
    arrays = {name: np.asarray(layer[part], np.float32) for member, keys in
              zip(members, layer_keys(prefixes, len(members[0]))) for layer, pair in zip(member, keys)
              for part, name in zip(("kernel", "bias"), pair)}
    atomic.savez(os.path.join(directory, "head.npz"), mean=head.mean, scale=head.scale, **arrays)
    meta = {"label_names": head.label_names, "feature": head.feature, "final_relu": head.final_relu,
            "weights": head.weights, "num_layers": len(members[0]), "info": head.info, **meta}
    if head.spec is not None:
        meta[spec_lib.KEY] = head.spec.to_dict()
    atomic.write_json(os.path.join(directory, "head.json"), meta)
    return directory


def _fix(meta: dict) -> str:
    return FIXES["frames" if meta.get("kind") == "frames" else "mean_std"]


def need(cond: bool, where: str, why: str, fix: str) -> None:
    if not cond:
        raise BadHead(f"{where}: {why}; {fix}")


def check(directory: str, meta: dict, arrays: dict, layer_keys: list[list[tuple[str, str]]],
          widths) -> spec_lib.EmbeddingSpec | None:
    """Checks head.json `meta` against head.npz `arrays`; returns the head's spec (None if it records none).
    layer_keys: per member, its layers' (kernel, bias) names; widths(d, kernels) -> each layer's input width."""
    npz, js = os.path.join(directory, "head.npz"), os.path.join(directory, "head.json")
    fix = _fix(meta)
    names = meta.get("label_names")
    need(isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)
          and len(set(names)) == len(names), js, "label_names must list two or more distinct class names", fix)
    wanted = {"mean", "scale"} | {k for member in layer_keys for pair in member for k in pair}
    missing, extra = sorted(wanted - set(arrays)), sorted(set(arrays) - wanted)
    need(not missing, npz, f"has no array {', '.join(missing[:3])}, which head.json ({js}) describes", fix)
    need(not extra, npz, f"holds array(s) {', '.join(extra[:3])} that head.json ({js}) does not describe "
                          f"(num_layers {meta.get('num_layers')})", fix)
    for k, a in arrays.items():
        need(a.dtype.kind == "f", npz, f"'{k}' holds {a.dtype} values, not floating point", fix)
        need(bool(np.isfinite(a).all()), npz, f"'{k}' holds NaN or infinite values", fix)
    mean, scale = arrays["mean"], arrays["scale"]
    need(mean.ndim == 1 and scale.shape == mean.shape, npz, f"mean {mean.shape} and scale {scale.shape} must be "
                                                             f"vectors of one length", fix)
    need(bool((scale > 0).all()), npz, "'scale' must be positive (it divides the features)", fix)
    for member in layer_keys:
        kernels = [arrays[k] for k, _ in member]
        for (k, b), kernel, width in zip(member, kernels, widths(mean.shape[0], kernels)):
            need(kernel.ndim == 2 and kernel.shape[0] == width, npz,
                  f"'{k}' has shape {kernel.shape}, but the layers chain needs [{width}, N] there", fix)
            need(arrays[b].shape == kernel.shape[1:], npz,
                  f"'{b}' has shape {arrays[b].shape}, but '{k}' has {kernel.shape[1]} outputs", fix)
        outputs = kernels[-1].shape[1]
        need(outputs == len(names), js, f"names {len(names)} classes ({', '.join(names[:4])}"
                                         f"{', ...' if len(names) > 4 else ''}) but {npz}'s last layer has "
                                         f"{outputs} outputs", fix)
    if spec_lib.KEY not in meta:
        return None
    try:
        return spec_lib.read(meta, js)
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise BadHead(f"{js}: unreadable embedding spec ({' '.join(str(e).split())}); {fix}") from None


def positive_int(meta: dict, key: str, directory: str) -> int:
    value = meta.get(key)
    need(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
          os.path.join(directory, "head.json"), f"'{key}' must be a whole number >= 1, got {value!r}", _fix(meta))
    return value


def known(meta: dict, key: str, choices, directory: str, default=None):
    value = meta.get(key, default)
    need(value in choices, os.path.join(directory, "head.json"),
          f"'{key}' is {value!r}, which this version cannot build; it knows {', '.join(map(str, choices))}",
          _fix(meta))
    return value
