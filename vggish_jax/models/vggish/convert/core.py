"""One conversion entry point: published files (or random init) -> a vggish-jax weights directory.
Written to a hidden folder beside `out` and swapped in when complete (a kill leaves `out` usable), under a
lock beside `out` (`lock_path`).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile

import numpy as np

from vggish_jax import atomic
from vggish_jax.models.vggish import hub, modeling, params as params_lib
from vggish_jax.models.vggish.convert import published
from vggish_jax.spec import params_sha256


def convert(out: str, *, torch_weights: str | None = None, tf_checkpoint: str | None = None,
            pca: str | None = None, download_source: str | None = None,
            random_seed: int | None = None, final_relu: bool | None = None, fmt: str = "orbax") -> str:
    """Write converted weights to `out` from exactly one source: torch files, TF files, a download ('torch' or
    'tf'), or random. `pca` (TF's .npz or torchvggish's .pth; a download fetches its own) is saved with them, and
    metadata.json records only the files used. final_relu: the default recorded (torchvggish applies one, current
    TF does not). fmt: "orbax" (params.save) or "safetensors" (hub.save: the Hugging Face Hub layout)."""
    sources = [torch_weights is not None, tf_checkpoint is not None, download_source is not None,
               random_seed is not None]
    if sum(sources) != 1:
        raise ValueError("give exactly one source: --torch-weights, --tf-checkpoint, --download or --random")
    pca_file = pca
    if download_source is not None:
        if pca_file is not None:
            raise ValueError(f"--download {download_source} fetches its own PCA file; drop "
                             f"--pca {pca_file}, or convert local files instead")
        if download_source not in ("torch", "tf"):
            raise ValueError(f"--download takes 'torch' or 'tf', got {download_source!r}")
        if download_source == "torch":
            torch_weights, pca_file = published.fetch("torch_weights"), published.fetch("torch_pca")
        else:
            tf_checkpoint, pca_file = published.fetch("tf_checkpoint"), published.fetch("tf_pca")

    pca_params = published.read_pca(pca_file) if pca_file is not None else None  # first: small; fails fast
    if torch_weights is not None:
        p = published.params_from_state_dict(published.load_pth(torch_weights), torch_weights)
        source, relu_default, weights_file = "torchvggish", True, torch_weights
    elif tf_checkpoint is not None:
        p = published.params_from_variables(published.read_checkpoint(tf_checkpoint), tf_checkpoint)
        source, relu_default, weights_file = "tensorflow", False, tf_checkpoint
    else:
        p, source, relu_default, weights_file = modeling.random(random_seed), "random", False, None
    used = {k: v for k, v in (("weights", weights_file), ("pca", pca_file)) if v is not None}
    meta = {"source": source, "final_relu": relu_default if final_relu is None else final_relu,
            "files": {k: os.path.abspath(v) for k, v in used.items()},
            "hashes": {os.path.basename(v): published.sha256(v) for v in used.values() if os.path.isfile(v)}}
    if random_seed is not None:
        meta["seed"] = random_seed
    return save_beside(out, p, pca=pca_params, metadata=meta, fmt=fmt)


def lock_path(out: str) -> str:
    """The lock file beside `out` (not in it: `out` itself is renamed by the swap)."""
    out = os.path.abspath(out)
    return os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.lock")


@contextlib.contextmanager
def writing(out: str):
    """Hold `out`'s lock (refused with one line while another convert holds it) and clean up after a
    convert killed half-way, in that order: never another writer's unfinished files."""
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with atomic.exclusive(lock_path(out), out):
        recover(out)
        yield out


def save_beside(out: str, params: dict, *, pca=None, metadata: dict, fmt: str = "orbax") -> str:
    """params.save (fmt "orbax") or hub.save ("safetensors") into a new folder next to `out`, then swap it in
    (old weights kept until then), holding `out`'s lock throughout."""
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    arrays = [v for d in params.values() for v in d.values()] + ([pca.eigen_vectors, pca.means] if pca else [])
    require_space(out, sum(np.asarray(a).nbytes for a in arrays))  # before the lock file is written
    with writing(out) as out:
        parent = os.path.dirname(out)
        new = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.new-")
        os.chmod(new, 0o777 & ~atomic.umask())
        try:
            if fmt == "safetensors":  # the spec save_pretrained would record for these weights
                f32 = {layer: {k: np.asarray(v, np.float32) for k, v in d.items()} for layer, d in params.items()}
                spec = params_lib.spec_of({**metadata, "weights_sha256": params_sha256(f32)})
                hub.save(new, params, pca=pca, config={**metadata, "spec": spec.to_dict()})
            else:
                with _quiet_orbax():
                    params_lib.save(new, params, pca=pca, metadata=metadata)
        except BaseException as e:
            shutil.rmtree(new, ignore_errors=True)
            if "No space left on device" in str(e) or getattr(e, "errno", None) == errno.ENOSPC:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), out) from None
            raise
        old = None
        if os.path.lexists(out):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.old-")
            os.rename(out, os.path.join(old, "weights"))
        os.rename(new, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return out


def require_space(out: str, need: int | None = None) -> None:
    """Refuse, before anything is written, an `out` whose disk cannot take `need` bytes of weights (default:
    the published VGGish's float32 params and PCA, what every source converts to)."""
    from vggish_jax import preflight

    if need is None:
        need = 4 * (sum(int(np.prod(s)) for d in params_lib.param_shapes().values() for s in d.values())
                    + params_lib.EMBEDDING_SIZE * (params_lib.EMBEDDING_SIZE + 1))
    parent = os.path.dirname(os.path.abspath(out))
    free = shutil.disk_usage(parent).free
    if free < need * 1.1 + (1 << 20):
        raise preflight.OutputError(f"{parent}: {free / 1e6:.0f} MB free, but the weights need about "
                                    f"{need / 1e6:.0f} MB; free some space or choose another --out")


def recover(out: str) -> None:
    """Clean up after a convert killed half-way: put back old weights moved aside just before the swap
    (killed between the two renames), and remove unfinished new ones."""
    parent, name = os.path.split(out)
    for entry in sorted(os.listdir(parent)):
        path = os.path.join(parent, entry)
        if entry.startswith(f".{name}.old-") and os.path.isdir(path):
            if not os.path.lexists(out) and os.path.isdir(os.path.join(path, "weights")):
                os.rename(os.path.join(path, "weights"), out)
            shutil.rmtree(path, ignore_errors=True)
        elif entry.startswith(f".{name}.new-") and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _quiet_orbax():
    """orbax logs each failed background write with a traceback (absl ERROR) before raising; the one-line
    error from the raised exception is enough."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
