"""An `Embedder` (`pipeline.device`) from a weights directory, loaded once per directory by `cached_embedder`."""
from __future__ import annotations

import functools
import os

import jax.numpy as jnp

from vggish_jax.models.vggish import modeling, params as params_lib
from vggish_jax.models.vggish.frontend import DEFAULT, FrontendConfig
from vggish_jax.pipeline.device import Embedder


def load_pretrained(directory: str | os.PathLike, *, final_relu: bool | None = None, dtype: str = "float32",
                    batch_size: int = 64, precision: str | None = None, formulation: str = "auto",
                    mesh=None, resample: str = "auto", cfg: FrontendConfig = DEFAULT) -> Embedder:
    """An Embedder from a weights directory written by `vggish-jax convert` (or `params.save`)."""
    model, meta = modeling.load_pretrained_model(directory, final_relu=final_relu, dtype=jnp.dtype(dtype))
    return Embedder(model, batch_size=batch_size, metadata=meta, precision=precision, formulation=formulation,
                    mesh=mesh, weights_dir=os.path.abspath(os.fspath(directory)), resample=resample, cfg=cfg)


@functools.lru_cache(maxsize=4)
def _cached(directory: str, stamp: tuple, kwargs: tuple) -> Embedder:
    return load_pretrained(directory, **dict(kwargs))


def cached_embedder(directory: str | os.PathLike, **load_kwargs) -> Embedder:
    """`load_pretrained`, loaded once per (directory, its metadata file's mtime and size, options): repeated
    calls neither reload the weights nor recompile."""
    directory = os.path.abspath(os.fspath(directory))
    try:
        st = os.stat(os.path.join(directory, params_lib.METADATA))
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = ()  # load_pretrained names what is missing
    return _cached(directory, stamp, tuple(sorted(load_kwargs.items())))
