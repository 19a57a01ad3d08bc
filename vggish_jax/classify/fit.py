"""The JAX heads' one fit loop: minibatch epochs, early-stopped on the table's validation metric
(`metrics.selection`). Each head passes its jitted `step` and a `batch(idx)` slicer.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from vggish_jax.classify import metrics


@dataclasses.dataclass
class Fitted:
    params: object  # the chosen epoch's parameters (NumPy leaves)
    best_epoch: int
    best_score: float | None  # None without validation (or when no epoch scored a number)
    history: list[dict]  # per epoch: epoch, train_loss (and val_score)
    best_probs: np.ndarray | None  # validation probabilities at the best epoch


@dataclasses.dataclass(frozen=True)
class Validation:
    """Early stopping: `probs(params)` -> [clips, classes] validation probabilities, scored against `y`."""
    probs: Callable
    y: np.ndarray
    patience: int


def dense(key, a: int, b: int, gain: float = 2.0) -> dict:
    """A [a, b] layer, He-initialised (gain 2) for the ReLU after it."""
    import jax
    import jax.numpy as jnp

    return {"kernel": jax.random.normal(key, (a, b)) * np.sqrt(gain / a), "bias": jnp.zeros(b)}


def relu_layers(layers, x, dropout: float = 0.0, key=None):
    """`x` through ReLU `layers`, with inverted dropout after each when given a key."""
    import jax

    for layer in layers:
        x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
        if dropout and key is not None:
            key, sub = jax.random.split(key)
            x = x * jax.random.bernoulli(sub, 1 - dropout, x.shape) / (1 - dropout)
    return x


def config(cls, info: dict):
    """A head's config dataclass from its info["config"] (JSON turned its tuples into lists)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in info["config"].items()})


def fit(params, opt_state, step: Callable, batch: Callable, n: int, *, batch_size: int, epochs: int, seed: int,
        key, validation: Validation | None = None, drop_last: bool = False) -> Fitted:
    """Up to `epochs` epochs over `n` examples, a seeded permutation each, `step(params, opt_state, *batch(idx),
    key) -> (params, opt_state, loss)` per minibatch. With `validation` the best epoch is kept (stop `patience`
    after it); without, the last."""
    import jax

    rng = np.random.default_rng(seed)
    best_score, best_epoch, best_params, best_probs = -np.inf, 0, params, None
    history = []
    for epoch in range(epochs):
        order = rng.permutation(n)
        losses = []
        # drop_last: no short final batch (one batch when n < batch_size)
        for i in range(0, (n - batch_size + 1 if n >= batch_size else 1) if drop_last else n, batch_size):
            key, sub = jax.random.split(key)
            params, opt_state, loss = step(params, opt_state, *batch(order[i: i + batch_size]), sub)
            losses.append(float(loss))
        row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        history.append(row)
        if validation is None:
            best_epoch, best_params = epoch, params
            continue
        probs = np.asarray(validation.probs(params))
        row["val_score"] = metrics.selection(validation.y, probs)
        if row["val_score"] > best_score:
            best_score, best_epoch, best_params, best_probs = row["val_score"], epoch, params, probs
        elif epoch - best_epoch >= validation.patience:
            break
    return Fitted(jax.tree.map(np.asarray, best_params), best_epoch,
                  None if best_probs is None else float(best_score), history, best_probs)
