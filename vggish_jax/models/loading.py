"""Filling an abstract Flax NNX module with arrays from a nested dict (how every backbone is loaded)."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx


def from_pure_dict(make: Callable[[], nnx.Module], tree: dict, *filters) -> nnx.Module:
    """The module `make()` builds, without running its initialisers, holding `tree` (float32) as the state
    selected by `filters` (all state when none). The tree must match that state's structure."""
    model = nnx.eval_shape(make)
    state = nnx.state(model, *filters)
    nnx.replace_by_pure_dict(state, jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree))
    nnx.update(model, state)
    return model


def shapes(make: Callable[[], nnx.Module], *filters) -> dict:
    """The nested dict of state shapes `make()` would hold (no arrays are allocated)."""
    return jax.tree.map(lambda a: tuple(a.shape), nnx.to_pure_dict(nnx.state(nnx.eval_shape(make), *filters)))
