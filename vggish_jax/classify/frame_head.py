"""JAX-frames: an MLP on every 0.96-s embedding, pooled over the clip (POOLINGS), a linear classifier; an
ensemble of such networks (different seeds) averages their probabilities. Trained on padded, masked
[clips, T, 128] batches with dropout, mixup and optional label smoothing, each member early-stopped on the
table's metric. Single-label: softmax (soft target rows accepted); multi-label: a sigmoid per class. The
attention scorer is the layer before the classifier. `forward_numpy` is the NumPy inference path (no jit per
clip length)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
from scipy import special

from vggish_jax import spec as spec_lib
from vggish_jax.classify import fit, head_check, metrics

KIND = "frames"
POOLINGS = ("mean", "mean_max", "mean_std", "attention")


@dataclasses.dataclass(frozen=True)
class FrameHeadConfig:
    hidden: tuple[int, ...] = (256, 256)
    pooling: str = "mean"  # one of POOLINGS: how a clip's frame activations become one vector
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    dropout: float = 0.5
    mixup: float = 0.4  # Beta(a, a) mixing; 0 turns it off
    label_smoothing: float = 0.0  # single-label: this much target mass spread evenly over the classes
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 15
    members: int = 5
    seed: int = 0

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose from {', '.join(POOLINGS)}")


@dataclasses.dataclass
class FrameHead:
    label_names: list[str]
    mean: np.ndarray  # [128] frame statistics of the training split
    scale: np.ndarray
    members: list[list[dict]]  # per member: layers {'kernel', 'bias'}; see `_split_layers`
    multilabel: bool = False
    spec: spec_lib.EmbeddingSpec | None = None
    weights: str | None = None
    final_relu: bool = False
    info: dict = dataclasses.field(default_factory=dict)
    pooling: str = "mean"
    feature = KIND

    def predict_proba(self, clips: list[np.ndarray]) -> np.ndarray:
        """Per-clip [n, 128] embeddings (any n >= 1, float or uint8) -> [clips, classes] probabilities."""
        return np.stack([forward_numpy(self, c) for c in clips]) if clips else np.zeros((0, len(self.label_names)))


def _split_layers(layers, pooling: str):
    """(frame MLP layers, attention scorer [H, 1] or None, classifier)."""
    if pooling == "attention":
        return layers[:-2], layers[-2], layers[-1]
    return layers[:-1], None, layers[-1]


def pool(xp, h, m, pooling: str, att=None):
    """[..., T, H] ReLU activations and [..., T] 0/1 mask -> [..., P]; `xp` is numpy or jax.numpy (one definition)."""
    mk = m[..., None]
    count = xp.maximum(m.sum(-1, keepdims=True), 1)
    mean = (h * mk).sum(-2) / count
    if pooling == "mean":
        return mean
    if pooling == "mean_max":  # activations are >= 0, so zeroed padding never wins the max over a real frame
        return xp.concatenate([mean, (h * mk).max(-2)], -1)
    if pooling == "mean_std":
        var = (((h - mean[..., None, :]) ** 2) * mk).sum(-2) / count
        return xp.concatenate([mean, xp.sqrt(var + 1e-6)], -1)
    s = (h @ att["kernel"])[..., 0] + att["bias"][0]
    s = xp.where(m > 0, s, -1e9)
    w = xp.exp(s - s.max(-1, keepdims=True)) * m
    return (h * (w / w.sum(-1, keepdims=True))[..., None]).sum(-2)


def pooled_width(hidden: int, pooling: str) -> int:
    return 2 * hidden if pooling in ("mean_max", "mean_std") else hidden


def forward_numpy(head: FrameHead, frames: np.ndarray) -> np.ndarray:
    """[n, 128] -> [classes]: the ensemble's mean probability for one clip."""
    x = (np.asarray(frames, np.float32) - head.mean) / head.scale
    out = []
    for layers in head.members:
        hidden, att, clf = _split_layers(layers, head.pooling)
        h = x
        for layer in hidden:
            h = np.maximum(h @ layer["kernel"] + layer["bias"], 0)
        z = pool(np, h, np.ones(len(h), np.float32), head.pooling, att) @ clf["kernel"] + clf["bias"]
        out.append(special.expit(z) if head.multilabel else special.softmax(z, -1))
    return np.mean(out, 0)


def forward_jax(head: FrameHead, clips: list[np.ndarray]) -> np.ndarray:
    """[clips, classes] ensemble probabilities through the batched, masked JAX path that training uses."""
    import jax
    import jax.numpy as jnp

    x, m = _standardised(clips, head.mean, head.scale)
    probs = [(jax.nn.sigmoid if head.multilabel else jax.nn.softmax)(_apply_jax(layers, x, m, head.pooling))
             for layers in head.members]
    return np.asarray(jnp.mean(jnp.stack(probs), 0))


def _apply_jax(layers, x, m, pooling: str, key=None, dropout: float = 0.0):
    """[clips, T, D] padded frames, [clips, T] mask -> [clips, classes] logits (dropout when given a key)."""
    import jax.numpy as jnp

    hidden, att, clf = _split_layers(layers, pooling)
    return pool(jnp, fit.relu_layers(hidden, x, dropout, key), m, pooling, att) @ clf["kernel"] + clf["bias"]


def _standardised(clips: list[np.ndarray], mean, scale, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[clips, T, D] standardised frames zero-padded to T (default: the longest; longer clips keep their first T)
    and the [clips, T] mask."""
    clips = [(np.asarray(c, np.float32) - mean) / scale for c in clips]
    length = length or max(c.shape[0] for c in clips)
    x = np.zeros((len(clips), length, clips[0].shape[1]), np.float32)
    m = np.zeros((len(clips), length), np.float32)
    for i, c in enumerate(clips):
        k = min(length, c.shape[0])
        x[i, :k], m[i, :k] = c[:k], 1
    return x, m


def targets_of(y, n_classes: int, multilabel: bool, label_smoothing: float = 0.0) -> np.ndarray:
    """[clips, classes] float targets: multi-hot rows, or one-hot / given soft rows smoothed by `label_smoothing`."""
    y = np.asarray(y)
    if multilabel:
        return y.astype(np.float32)
    t = y.astype(np.float32) if y.ndim == 2 else np.eye(n_classes, dtype=np.float32)[y]
    return (1 - label_smoothing) * t + label_smoothing / n_classes


def _init_member(key, sizes, pooling: str):
    """He-initialised frame MLP (sizes[:-1]), the attention scorer if any, and the classifier on the pooled vector."""
    import jax

    keys = jax.random.split(key, len(sizes))
    layers = [fit.dense(k, a, b) for k, a, b in zip(keys, sizes[:-2], sizes[1:-1])]
    if pooling == "attention":
        layers.append(fit.dense(keys[-2], sizes[-2], 1, gain=1.0))
    return layers + [fit.dense(keys[-1], pooled_width(sizes[-2], pooling), sizes[-1])]


def _make_step(cfg: FrameHeadConfig, opt, multilabel: bool):
    """The jitted minibatch update: mixup of the batch's clips (when cfg.mixup), dropout, AdamW."""
    import jax
    import optax

    if multilabel:
        loss = lambda z, t: optax.sigmoid_binary_cross_entropy(z, t).sum(-1).mean()  # noqa: E731
    else:
        loss = lambda z, t: optax.softmax_cross_entropy(z, t).mean()  # noqa: E731

    @jax.jit
    def step(layers, state, xb, mb, tb, key):
        k_drop, k_lam, k_perm = jax.random.split(key, 3)
        if cfg.mixup:
            lam = jax.random.beta(k_lam, cfg.mixup, cfg.mixup, (xb.shape[0],))
            perm = jax.random.permutation(k_perm, xb.shape[0])
            # Mix the pooled inputs' sources: frames of both clips, each weighted, masks kept per position.
            xb = lam[:, None, None] * xb + (1 - lam[:, None, None]) * xb[perm]
            mb = jax.numpy.maximum(mb, mb[perm])
            tb = lam[:, None] * tb + (1 - lam[:, None]) * tb[perm]
        value, grads = jax.value_and_grad(
            lambda p: loss(_apply_jax(p, xb, mb, cfg.pooling, k_drop, cfg.dropout), tb))(layers)
        updates, state = opt.update(grads, state, layers)
        return optax.apply_updates(layers, updates), state, value

    return step


def train_frame_head(train: list[np.ndarray], y_train, val: list[np.ndarray] | None, y_val, label_names,
                     cfg: FrameHeadConfig = FrameHeadConfig(), multilabel: bool = False, log=None,
                     epochs: list[int] | None = None, **meta) -> FrameHead:
    """Fit `cfg.members` networks on train; validation picks each member's epoch (classify.fit). `y_train`: class
    indices or soft rows [clips, classes]; multi-hot when multilabel. `epochs` (per member, no validation): `refit`.
    """
    import jax
    import optax

    if (val is None) != (epochs is not None):
        raise ValueError("give either validation clips (early stopping) or fixed epochs per member, not both")
    frames = np.concatenate([np.asarray(c, np.float32) for c in train])
    mean, scale = frames.mean(0), frames.std(0) + 1e-6
    xt, mt = _standardised(train, mean, scale)
    targets = targets_of(y_train, len(label_names), multilabel, cfg.label_smoothing)
    sizes = (xt.shape[-1], *cfg.hidden, len(label_names))
    opt = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    step = _make_step(cfg, opt, multilabel)
    validation = None
    if val is not None:
        xv, mv = _standardised(val, mean, scale, xt.shape[1])
        squash = jax.nn.sigmoid if multilabel else jax.nn.softmax
        out_fn = jax.jit(lambda p: squash(_apply_jax(p, xv, mv, cfg.pooling)))
        validation = fit.Validation(out_fn, np.asarray(y_val), cfg.patience)
    members, histories, member_probs = [], [], []
    for j in range(cfg.members):
        seed = cfg.seed * 1000 + j
        key, init = jax.random.split(jax.random.PRNGKey(seed))
        layers = _init_member(init, sizes, cfg.pooling)
        r = fit.fit(layers, opt.init(layers), step, lambda idx: (xt[idx], mt[idx], targets[idx]), len(xt),
                    batch_size=cfg.batch_size, epochs=cfg.max_epochs if epochs is None else epochs[j], seed=seed,
                    key=key, validation=validation, drop_last=True)
        if log:
            log(f"frame head member {j}: best epoch {r.best_epoch}" +
                ("" if val is None else f", validation {r.best_score:.4f}"))
        members.append(r.params)
        member_probs.append(r.best_probs)
        histories.append({"best_epoch": r.best_epoch, "best_val_score": r.best_score, "history": r.history})
    info = {"members": histories, "config": dataclasses.asdict(cfg), "metric": metrics.names(multilabel)[0],
            "train_clips": len(train)}
    if val is not None:  # (None when no epoch scored a number: no class with a positive and a negative)
        info["ensemble_val_score"] = None if any(p is None for p in member_probs) else \
            metrics.selection(y_val, np.mean(member_probs, 0))
    else:
        info["refit_epochs"] = list(epochs)
    return FrameHead(list(label_names), mean, scale, members, multilabel, info=info, pooling=cfg.pooling, **meta)


def refit(head: FrameHead, clips: list[np.ndarray], y, log=None) -> FrameHead:
    """`head`'s recipe refitted on `clips` (e.g. train + validation), each member for best epoch + 1 epochs."""
    cfg = fit.config(FrameHeadConfig, head.info)
    epochs = [m["best_epoch"] + 1 for m in head.info["members"]]
    new = train_frame_head(clips, y, None, None, head.label_names, cfg, head.multilabel, log, epochs=epochs,
                           spec=head.spec, weights=head.weights, final_relu=head.final_relu)
    new.info["selected_on_validation"] = {k: head.info[k] for k in ("ensemble_val_score", "members") if k in head.info}
    return new


def save(directory: str, head: FrameHead) -> str:
    return head_check.write(directory, head, head.members, [f"m{j}_" for j in range(len(head.members))], kind=KIND,
                            multilabel=head.multilabel, num_members=len(head.members), pooling=head.pooling)


def load(directory: str, meta: dict, arrays: dict) -> FrameHead:
    """The head in `directory` from its head.json `meta` and head.npz `arrays`, checked first (head_check)."""
    head_check.known(meta, "feature", (KIND,), directory)
    # Heads saved before pooling was configurable carry no "pooling": they mean-pool.
    pooling = head_check.known(meta, "pooling", POOLINGS, directory, default="mean")
    n_layers, n_members = (head_check.positive_int(meta, k, directory) for k in ("num_layers", "num_members"))
    head_check.need(n_layers >= 2 or pooling != "attention", os.path.join(directory, "head.json"),
                    "attention pooling needs num_layers >= 2 (its scorer, then the classifier)",
                    head_check.FIXES[KIND])
    keys = head_check.layer_keys([f"m{j}_" for j in range(n_members)], n_layers)

    def widths(d, kernels):  # frame MLP from d, then (attention scorer and) the classifier on the pooled vector
        hidden, att, _ = _split_layers(kernels, pooling)
        h = hidden[-1].shape[-1] if hidden else d
        return [d] + [k.shape[-1] for k in hidden[:-1]] + ([h] if att is not None else []) + [pooled_width(h, pooling)]

    spec = head_check.check(directory, meta, arrays, keys, widths)
    return FrameHead(meta["label_names"], arrays["mean"], arrays["scale"], head_check.layers(arrays, keys),
                     bool(meta.get("multilabel")), spec=spec, weights=meta.get("weights"),
                     final_relu=bool(meta.get("final_relu")), info=meta.get("info", {}), pooling=pooling)

