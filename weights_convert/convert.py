"""One conversion entry point: published files (or random init) -> a vggish-jax weights directory.

The new weights are written to a hidden folder beside `out` and swapped in only when complete, so a kill
or a full disk half-way leaves the weights already in `out` usable.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile

import numpy as np

from vggish_jax.models.vggish import pretrained, params as params_lib
from weights_convert import download, tf_slim, torchvggish


def convert(out: str, *, torch_weights: str | None = None, torch_pca: str | None = None,
            tf_checkpoint: str | None = None, tf_pca: str | None = None, download_source: str | None = None,
            random_seed: int | None = None, final_relu: bool | None = None) -> str:
    """Write converted weights to `out`; exactly one source: torch files, TF files, a download, or random.

    download_source: 'torch' or 'tf' fetches the published files into the cache (see weights_convert.download).
    final_relu: the default recorded with the weights (torchvggish applies one, current TF does not).
    """
    sources = [torch_weights is not None, tf_checkpoint is not None, download_source is not None,
               random_seed is not None]
    if sum(sources) != 1:
        raise ValueError("give exactly one source: --torch-weights, --tf-checkpoint, --download or --random")
    if download_source == "torch":
        torch_weights, torch_pca = download.fetch("torch_weights"), download.fetch("torch_pca")
    elif download_source == "tf":
        tf_checkpoint, tf_pca = download.fetch("tf_checkpoint"), download.fetch("tf_pca")
    elif download_source is not None:
        raise ValueError(f"--download takes 'torch' or 'tf', got {download_source!r}")

    hashes, pca = {}, None
    if torch_weights is not None:
        p = torchvggish.params_from_state_dict(torchvggish.load_pth(torch_weights), torch_weights)
        params_lib.validate(p, torch_weights)
        hashes[os.path.basename(torch_weights)] = download.sha256(torch_weights)
        if torch_pca is not None:
            pca = torchvggish.pca_from_state_dict(torchvggish.load_pth(torch_pca), torch_pca)
            hashes[os.path.basename(torch_pca)] = download.sha256(torch_pca)
        source, relu_default = "torchvggish", True
    elif tf_checkpoint is not None:
        p = tf_slim.params_from_variables(tf_slim.read_checkpoint(tf_checkpoint), tf_checkpoint)
        params_lib.validate(p, tf_checkpoint)
        if os.path.isfile(tf_checkpoint):
            hashes[os.path.basename(tf_checkpoint)] = download.sha256(tf_checkpoint)
        if tf_pca is not None:
            pca = tf_slim.load_pca_npz(tf_pca)
            hashes[os.path.basename(tf_pca)] = download.sha256(tf_pca)
        source, relu_default = "tensorflow", False
    else:
        p, source, relu_default = params_lib.random(random_seed), "random", False
    meta = {"source": source, "hashes": hashes, "final_relu": relu_default if final_relu is None else final_relu,
            "files": {k: os.path.abspath(v) for k, v in (("weights", torch_weights or tf_checkpoint),
                                                          ("pca", torch_pca or tf_pca)) if v}}
    if random_seed is not None:
        meta["seed"] = random_seed
    return save_beside(out, p, pca=pca, metadata=meta)


def save_beside(out: str, params: dict, *, pca=None, metadata: dict) -> str:
    """pretrained.save into a new folder next to `out`, then swap it in (old weights kept until then)."""
    from vggish_jax import atomic, preflight

    out = os.path.abspath(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    recover(out)
    need = sum(np.asarray(a).nbytes for a in _leaves(params)) + (pca.eigen_vectors.nbytes + pca.means.nbytes
                                                                 if pca is not None else 0)
    free = shutil.disk_usage(parent).free
    if free < need * 1.1 + (1 << 20):
        raise preflight.OutputError(f"{parent}: {free / 1e6:.0f} MB free, but the weights need about "
                                    f"{need / 1e6:.0f} MB; free some space or choose another --out")
    new = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.new-")
    os.chmod(new, 0o777 & ~atomic.umask())
    try:
        with _quiet_orbax():
            pretrained.save(new, params, pca=pca, metadata=metadata)
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


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    else:
        yield tree


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
