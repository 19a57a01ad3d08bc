"""One conversion entry point: published files (or random init) -> a vggish-jax weights directory."""
from __future__ import annotations

import os

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
    return pretrained.save(out, p, pca=pca, metadata=meta)
