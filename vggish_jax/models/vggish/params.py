"""VGGish's parameters: their layout, the one check of a parameter tree, and the weights folder on disk.

Layout (what the converters produce, checkpoints hold and `modeling.build` takes), a plain nested dict:
    {'conv1': {'kernel': [3, 3, 1, 64], 'bias': [64]}, ..., 'fc2': {'kernel': [4096, 128], 'bias': [128]}}
Conv kernels are HWIO, dense kernels [in, out]; fc1_1's input rows are in H, W, C flatten order. A
`width_divisor` > 1 divides every hidden width (not the 128-d output): a same-shaped small model.

A weights folder:
    DIR/params/       orbax StandardCheckpointer tree {'params': <layout>, 'pca': {...}} (pca optional)
    DIR/metadata.json {"model": "vggish", "source": ..., "hashes": {...}, "final_relu": bool,
                       "width_divisor": int, "params_files": {relative path: bytes}, ...}

`load` checks the files in params_files before orbax reads them (one line, not a tensorstore error). No jax.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable

import numpy as np

from vggish_jax import atomic
from vggish_jax.models.vggish.postprocess import PCAParams
from vggish_jax.spec import params_sha256

CONV_CHANNELS = (("conv1", 64), ("conv2", 128), ("conv3_1", 256), ("conv3_2", 256), ("conv4_1", 512), ("conv4_2", 512))
POOL_AFTER = frozenset({"conv1", "conv2", "conv3_2", "conv4_2"})
FC_FEATURES = (("fc1_1", 4096), ("fc1_2", 4096), ("fc2", 128))
FLAT_SHAPE = (6, 4, 512)  # the conv stack's output map (H, W, C) for a 96 x 64 example
EMBEDDING_SIZE = 128


class WeightsError(ValueError):
    """Weights missing, of the wrong shape, or not finite. The message names the tensor."""


def require_pca(pca: PCAParams | None, need: str, weights: str | os.PathLike | None = None) -> PCAParams:
    """`pca`, or the one refusal of weights (the folder `weights`, when known) without PCA params that `need`s them."""
    if pca is None:
        raise WeightsError(f"{weights or 'this model'}: these weights have no PCA params, which {need} needs; "
                           f"convert them again with their PCA file, e.g. `vggish-jax convert --torch-weights "
                           f"vggish-10086976.pth --pca vggish_pca_params-970ea276.pth --out {weights or 'DIR'} "
                           f"--overwrite`")
    return pca


def param_shapes(width_divisor: int = 1) -> dict:
    """{layer: {'kernel': shape, 'bias': shape}} of the reference layout (or of a width_divisor model)."""
    shapes, in_ch = {}, 1
    for name, ch in CONV_CHANNELS:
        ch //= width_divisor
        shapes[name] = {"bias": (ch,), "kernel": (3, 3, in_ch, ch)}
        in_ch = ch
    in_f = FLAT_SHAPE[0] * FLAT_SHAPE[1] * in_ch
    for name, f in FC_FEATURES:
        f = f if name == "fc2" else f // width_divisor
        shapes[name] = {"bias": (f,), "kernel": (in_f, f)}
        in_f = f
    return shapes


def validate(params: dict, source: str = "params", width_divisor: int = 1,
             name_of: Callable[[str, str], str] | None = None) -> None:
    """The one check of a parameter tree: names, shapes (of a `width_divisor` model) and finiteness. Raises
    WeightsError naming the first bad tensor; `name_of(layer, part)` names it as the source file does."""
    expected = param_shapes(width_divisor)
    missing = sorted(f"{l}/{k}" for l, d in expected.items() for k in d if k not in params.get(l, {}))
    extra = sorted(f"{l}/{k}" for l, d in params.items() for k in (d if isinstance(d, dict) else {"": 0})
                   if k not in expected.get(l, {}))
    if missing:
        raise WeightsError(f"{source}: missing tensors {missing}")
    if extra:
        raise WeightsError(f"{source}: unexpected tensors {extra}")
    for layer, d in expected.items():
        for k, shape in d.items():
            got = tuple(np.shape(params[layer][k]))
            if got != shape:
                what = "" if width_divisor == 1 else f" (of a width_divisor={width_divisor} VGGish)"
                if name_of is not None:
                    raise WeightsError(f"{source}: tensor {name_of(layer, k)} does not fit VGGish {layer}/{k} "
                                       f"(converted shape {got}, expected {shape}{what})")
                raise WeightsError(f"{source}: tensor {layer}/{k} has shape {got}, expected {shape}{what}")
            if not np.all(np.isfinite(np.asarray(params[layer][k], dtype=np.float32))):
                raise WeightsError(f"{source}: tensor {name_of(layer, k) if name_of else f'{layer}/{k}'} contains "
                                   f"NaN/inf; the weight file is corrupt")


METADATA = "metadata.json"
TREE = "params"


def width_divisor_of_params(params: dict) -> int | None:
    """The width_divisor whose layout `params` has, read from conv1's output channels (None: not a VGGish
    layout; loading names what is wrong)."""
    kernel = (params.get("conv1") or {}).get("kernel") if isinstance(params, dict) else None
    ch = int(np.shape(kernel)[-1]) if kernel is not None and np.ndim(kernel) else 0
    conv1 = CONV_CHANNELS[0][1]
    return conv1 // ch if ch and conv1 % ch == 0 else None


def save(directory: str | os.PathLike, params: dict, *, pca: PCAParams | None = None,
         metadata: dict[str, Any] | None = None, model: str = "vggish") -> str:
    """Write params (+ PCA) and metadata under `directory` (created; an existing checkpoint is replaced)."""
    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(directory, exist_ok=True)
    tree: dict[str, Any] = {"params": _np_tree(params)}
    if pca is not None:
        tree["pca"] = {"eigen_vectors": pca.eigen_vectors.astype(np.float32), "means": pca.means.astype(np.float32)}
    import orbax.checkpoint as ocp  # here, so importing the model code does not import orbax

    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(os.path.join(directory, TREE), tree, force=True)
        ckptr.wait_until_finished()
    # The weights' identity is their content, recorded here so every artifact made with them can name it.
    meta = {"model": model, "has_pca": pca is not None, **(metadata or {}),
            "weights_sha256": params_sha256(tree["params"]), "params_files": _listing(os.path.join(directory, TREE))}
    divisor = width_divisor_of_params(tree["params"]) if model == "vggish" else None
    if divisor is not None:
        meta["width_divisor"] = divisor
    atomic.write_json(os.path.join(directory, METADATA), meta, sort_keys=True)
    return directory


def final_relu_of(metadata: dict, override: bool | None = None) -> bool:
    """The one place final_relu is decided: an explicit override, else what the weights' metadata records
    (torchvggish conversions True, TF False)."""
    return bool(metadata.get("final_relu", False)) if override is None else bool(override)


def width_divisor_of(metadata: dict) -> int:
    """The width_divisor a weights directory records (1, the real VGGish, when it predates the field)."""
    return int(metadata.get("width_divisor", 1))


def spec_of(metadata: dict, *, final_relu: bool | None = None, dtype: str = "float32",
            frontend_precision: str = "float32"):
    """The EmbeddingSpec of raw embeddings made with these weights (their content hash, final_relu as
    `final_relu_of` decides, the default frontend at `frontend_precision`)."""
    from vggish_jax.models.vggish.frontend import DEFAULT
    from vggish_jax.spec import EmbeddingSpec

    return EmbeddingSpec.create(weights_sha256=metadata["weights_sha256"],
                                final_relu=final_relu_of(metadata, final_relu),
                                dtype=dtype, frontend=DEFAULT, frontend_precision=frontend_precision)


def load(directory: str | os.PathLike) -> tuple[dict, PCAParams | None, dict]:
    """(params, pca or None, metadata) from a weights directory written by `save`."""
    directory = os.path.abspath(os.fspath(directory))
    tree_dir = os.path.join(directory, TREE)
    redo = f"convert the weights again with `vggish-jax convert ... --out {directory} --overwrite`"
    _require_weights_folder(directory)
    if not os.path.isdir(tree_dir):
        raise WeightsError(
            f"{directory}: no converted weights here; run `vggish-jax convert --download torch --out {directory}` "
            f"(needs internet and the [torch] extra) or `vggish-jax convert --torch-weights vggish-10086976.pth "
            f"--pca vggish_pca_params-970ea276.pth --out {directory}`")
    meta_path = os.path.join(directory, METADATA)
    if not os.path.isfile(meta_path):
        # Never default it: final_relu and the weights' identity would silently be guessed.
        raise WeightsError(f"{meta_path}: missing, so how these weights were made is unknown; {redo}")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{meta_path}: unreadable ({_short_reason(e)}); {redo}") from e
    _check_listing(tree_dir, meta.get("params_files"), redo)
    import orbax.checkpoint as ocp

    try:
        with ocp.StandardCheckpointer() as ckptr:
            tree = ckptr.restore(tree_dir)
    except Exception as e:
        _silence_late_orbax_reads()
        raise WeightsError(f"{tree_dir}: cannot read the checkpoint ({_short_reason(e)}); {redo}") from e
    tree = _np_tree(tree)
    if "weights_sha256" not in meta:  # written before the hash was recorded
        meta["weights_sha256"] = params_sha256(tree["params"])
    pca = None
    if "pca" in tree:
        try:
            pca = PCAParams(tree["pca"]["eigen_vectors"], tree["pca"]["means"])
        except ValueError as e:
            raise WeightsError(f"{tree_dir}: {e}; {redo}") from None
    return tree["params"], pca, meta


def _require_weights_folder(path: str) -> None:
    """Something inside a weights folder, or a published file, given where the folder belongs: say which."""
    parent = os.path.dirname(path)
    if os.path.isfile(path):
        name = os.path.basename(path)
        if name == METADATA:
            raise WeightsError(f"{path}: is the weights' metadata file; pass the folder that holds it: "
                               f"--weights {parent}")
        if name.endswith((".pth", ".pt")):
            raise WeightsError(f"{path}: is a published torch file, not converted weights; convert it first "
                               f"(`vggish-jax convert --torch-weights {path} --out DIR`) and pass --weights DIR")
        if ".ckpt" in name or name.endswith(".npz"):
            raise WeightsError(f"{path}: is a published TF file, not converted weights; convert it first "
                               f"(`vggish-jax convert --tf-checkpoint CKPT --pca NPZ --out DIR`) and pass "
                               f"--weights DIR")
        raise WeightsError(f"{path}: is a file; --weights takes the folder written by `vggish-jax convert --out DIR`")
    if os.path.isfile(os.path.join(parent, METADATA)) and os.path.basename(path) == TREE:
        raise WeightsError(f"{path}: is the checkpoint inside a weights folder; pass the folder above it: "
                           f"--weights {parent}")


def require_new_target(directory: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Check, before converting, that `directory` can take a weights directory; refuse to replace one silently."""
    from vggish_jax import preflight

    directory = preflight.output_dir(directory)
    if os.path.isdir(directory) and os.listdir(directory) and not overwrite:
        what = ("holds converted weights already" if os.path.exists(os.path.join(directory, TREE))
                or os.path.exists(os.path.join(directory, METADATA)) else "is a folder that is not empty")
        raise preflight.OutputError(f"{directory}: {what}; pass --overwrite to replace them, or choose another --out")
    return directory


def _listing(tree_dir: str) -> dict[str, int]:
    paths = (os.path.join(root, name) for root, _, names in os.walk(tree_dir) for name in names)
    return dict(sorted((os.path.relpath(p, tree_dir), os.path.getsize(p)) for p in paths))


def _check_listing(tree_dir: str, listing: dict | None, redo: str) -> None:
    """Every file recorded at save time is there with its size (cheap; catches truncated copies)."""
    if not listing:  # written before the listing was recorded: check orbax's own index at least
        listing = {"manifest.ocdbt": None, "_METADATA": None}
    for rel, size in listing.items():
        path = os.path.join(tree_dir, rel)
        if not os.path.isfile(path):
            raise WeightsError(f"{path}: missing from the weights directory; {redo}")
        if size is not None and os.path.getsize(path) != size:
            raise WeightsError(f"{path}: {os.path.getsize(path)} bytes instead of {size} (truncated or damaged "
                               f"copy); {redo}")


def _silence_late_orbax_reads() -> None:
    """Drop the unraisable `Event loop is closed` errors of tensorstore reads that finish after a failed restore."""
    import sys

    previous = sys.unraisablehook
    if getattr(previous, "_drops_closed_loop", False):
        return

    def hook(u):
        if isinstance(u.exc_value, RuntimeError) and str(u.exc_value) == "Event loop is closed":
            return
        previous(u)

    hook._drops_closed_loop = True
    sys.unraisablehook = hook


def _short_reason(e: BaseException) -> str:
    """The first sentence of an error, without the tensorstore spec JSON some orbax errors carry."""
    text = re.split(r"\s*\[tensorstore_spec", str(e), maxsplit=1)[0]
    text = " ".join(text.split())
    return f"{type(e).__name__}: {text[:200]}"


def _np_tree(tree):
    if isinstance(tree, dict):
        return {k: _np_tree(v) for k, v in tree.items()}
    return np.asarray(tree)
