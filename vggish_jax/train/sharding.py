"""Data parallelism over all devices: one 1-D mesh, batches split on 'data', everything else replicated."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def make_mesh() -> jax.sharding.Mesh:
    # Auto axes: the compiler propagates the batch sharding through the model and all-reduces the gradients.
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def data_sharding(mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch(global_batch: int) -> int:
    """Per-process batch; the global batch must split evenly over devices (and so over processes)."""
    n = jax.device_count()
    if global_batch % n:
        raise ValueError(f"batch_size {global_batch} does not divide by the {n} devices; "
                         f"use a multiple of {n} (or gradient accumulation for larger effective batches)")
    return global_batch // jax.process_count()


def shard_batch(mesh, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows -> global arrays sharded over 'data' (works on one host and many)."""
    s = data_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(s, v) for k, v in local.items()}


def replicate(mesh, tree):
    return jax.device_put(tree, replicated(mesh))
