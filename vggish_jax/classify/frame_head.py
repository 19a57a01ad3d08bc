"""A frame-level genre head: an MLP applied to every 0.96-s embedding, mean-pooled over the clip, then a linear
classifier; an ensemble of such networks (different seeds) averages their probabilities.

Trained with JAX/optax on padded [clips, T, 128] batches (a mask keeps padding out of the pool), with dropout
and mixup (convex mixes of two clips and their targets), early-stopped per member on the validation metric
(accuracy, or mAP when multi-label). Single-label uses softmax, multi-label a sigmoid per class.

On disk (DIR): head.npz (frame mean/scale, each member's layers as m{j}_layer{i}_kernel/bias) + head.json
(kind "frames", label names, multilabel, the EmbeddingSpec of the training embeddings, config, history).
`forward_numpy` is the inference path in plain NumPy (used for prediction, so it needs no jit per clip length).
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from vggish_jax import atomic, spec as spec_lib

KIND = "frames"


@dataclasses.dataclass(frozen=True)
class FrameHeadConfig:
    hidden: tuple[int, ...] = (256, 256)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-3
    dropout: float = 0.5
    mixup: float = 0.4  # Beta(a, a) mixing; 0 turns it off
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 15
    members: int = 5
    seed: int = 0


@dataclasses.dataclass
class FrameHead:
    label_names: list[str]
    mean: np.ndarray  # [128] frame statistics of the training split
    scale: np.ndarray
    members: list[list[dict]]  # per member: layers {'kernel', 'bias'}; the last one is the classifier
    multilabel: bool = False
    spec: spec_lib.EmbeddingSpec | None = None
    weights: str | None = None
    final_relu: bool = False
    info: dict = dataclasses.field(default_factory=dict)
    feature = KIND

    def predict_proba(self, clips: list[np.ndarray]) -> np.ndarray:
        """Per-clip [n, 128] embeddings (any n >= 1, float or uint8) -> [clips, classes] probabilities."""
        return np.stack([forward_numpy(self, c) for c in clips]) if clips else np.zeros((0, len(self.label_names)))


def forward_numpy(head: FrameHead, frames: np.ndarray) -> np.ndarray:
    """[n, 128] -> [classes]: the ensemble's mean probability for one clip."""
    x = (np.asarray(frames, np.float32) - head.mean) / head.scale
    out = []
    for layers in head.members:
        h = x
        for layer in layers[:-1]:
            h = np.maximum(h @ layer["kernel"] + layer["bias"], 0)
        z = h.mean(0) @ layers[-1]["kernel"] + layers[-1]["bias"]
        out.append(1 / (1 + np.exp(-z)) if head.multilabel else _softmax(z))
    return np.mean(out, 0)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def pad_clips(clips: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[clips, T, D] float32 zero-padded frames (longer clips keep their first T) and [clips, T] mask."""
    length = length or max(c.shape[0] for c in clips)
    x = np.zeros((len(clips), length, clips[0].shape[1]), np.float32)
    m = np.zeros((len(clips), length), np.float32)
    for i, c in enumerate(clips):
        k = min(length, c.shape[0])
        x[i, :k], m[i, :k] = c[:k], 1
    return x, m


def score(y: np.ndarray, probs: np.ndarray, multilabel: bool) -> float:
    """The selection metric: accuracy, or (multi-label) mAP over classes with a positive."""
    if not multilabel:
        return float(np.mean(probs.argmax(-1) == y))
    from sklearn.metrics import average_precision_score

    keep = y.sum(0) > 0
    return float(average_precision_score(y[:, keep], probs[:, keep], average="macro"))


def train_frame_head(train: list[np.ndarray], y_train, val: list[np.ndarray], y_val, label_names,
                     cfg: FrameHeadConfig = FrameHeadConfig(), multilabel: bool = False, log=None, **meta) -> FrameHead:
    """Fit `cfg.members` networks on train only; validation picks each member's epoch. History in .info."""
    import jax
    import jax.numpy as jnp
    import optax

    y_train, y_val = np.asarray(y_train), np.asarray(y_val)
    frames = np.concatenate([np.asarray(c, np.float32) for c in train])
    mean, scale = frames.mean(0), frames.std(0) + 1e-6
    xt, mt = pad_clips([(np.asarray(c, np.float32) - mean) / scale for c in train])
    xv, mv = pad_clips([(np.asarray(c, np.float32) - mean) / scale for c in val], xt.shape[1])
    n_classes = len(label_names)
    targets = y_train.astype(np.float32) if multilabel else np.eye(n_classes, dtype=np.float32)[y_train]
    sizes = (xt.shape[-1], *cfg.hidden, n_classes)

    def apply(layers, x, m, key=None):
        for layer in layers[:-1]:
            x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
            if key is not None and cfg.dropout:
                key, sub = jax.random.split(key)
                x = x * jax.random.bernoulli(sub, 1 - cfg.dropout, x.shape) / (1 - cfg.dropout)
        pooled = (x * m[..., None]).sum(1) / jnp.maximum(m.sum(1, keepdims=True), 1)
        return pooled @ layers[-1]["kernel"] + layers[-1]["bias"]

    def loss(z, t):
        if multilabel:
            return optax.sigmoid_binary_cross_entropy(z, t).sum(-1).mean()
        return optax.softmax_cross_entropy(z, t).mean()

    opt = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)

    @jax.jit
    def step(layers, state, xb, mb, tb, key):
        k_drop, k_lam, k_perm = jax.random.split(key, 3)
        if cfg.mixup:
            lam = jax.random.beta(k_lam, cfg.mixup, cfg.mixup, (xb.shape[0],))
            perm = jax.random.permutation(k_perm, xb.shape[0])
            # Mix the pooled inputs' sources: frames of both clips, each weighted, masks kept per position.
            xb = lam[:, None, None] * xb + (1 - lam[:, None, None]) * xb[perm]
            mb = jnp.maximum(mb, mb[perm])
            tb = lam[:, None] * tb + (1 - lam[:, None]) * tb[perm]
        value, grads = jax.value_and_grad(lambda p: loss(apply(p, xb, mb, k_drop), tb))(layers)
        updates, state = opt.update(grads, state, layers)
        return optax.apply_updates(layers, updates), state, value

    out_fn = jax.jit(lambda p, x, m: jax.nn.sigmoid(apply(p, x, m)) if multilabel else jax.nn.softmax(apply(p, x, m)))
    members, histories, member_probs = [], [], []
    for j in range(cfg.members):
        seed = cfg.seed * 1000 + j
        key = jax.random.PRNGKey(seed)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            key, sub = jax.random.split(key)
            layers.append({"kernel": jax.random.normal(sub, (a, b)) * np.sqrt(2.0 / a), "bias": jnp.zeros(b)})
        state = opt.init(layers)
        rng = np.random.default_rng(seed)
        best, history = (-1.0, 0, layers, None), []
        for epoch in range(cfg.max_epochs):
            order = rng.permutation(len(xt))
            losses = []
            for i in range(0, len(order) - cfg.batch_size + 1 if len(order) >= cfg.batch_size else 1, cfg.batch_size):
                idx = order[i: i + cfg.batch_size]
                key, sub = jax.random.split(key)
                layers, state, value = step(layers, state, xt[idx], mt[idx], targets[idx], sub)
                losses.append(float(value))
            probs = np.asarray(out_fn(layers, xv, mv))
            val = score(y_val, probs, multilabel)
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_score": val})
            if val > best[0]:
                best = (val, epoch, layers, probs)
            elif epoch - best[1] >= cfg.patience:
                break
        if log:
            log(f"frame head member {j}: best epoch {best[1]}, validation {best[0]:.4f}")
        members.append(jax.tree.map(np.asarray, best[2]))
        member_probs.append(best[3])
        histories.append({"best_epoch": best[1], "best_val_score": best[0], "history": history})
    ensemble_val = score(y_val, np.mean(member_probs, 0), multilabel)
    info = {"members": histories, "ensemble_val_score": ensemble_val, "config": dataclasses.asdict(cfg),
            "metric": "mAP" if multilabel else "accuracy"}
    return FrameHead(list(label_names), mean, scale, members, multilabel, info=info, **meta)


def save(directory: str, head: FrameHead) -> str:
    os.makedirs(directory, exist_ok=True)
    arrays = {"mean": head.mean, "scale": head.scale}
    for j, layers in enumerate(head.members):
        for i, layer in enumerate(layers):
            arrays[f"m{j}_layer{i}_kernel"] = np.asarray(layer["kernel"], np.float32)
            arrays[f"m{j}_layer{i}_bias"] = np.asarray(layer["bias"], np.float32)
    atomic.savez(os.path.join(directory, "head.npz"), **arrays)
    meta = {"kind": KIND, "label_names": head.label_names, "multilabel": head.multilabel, "feature": KIND,
            "num_members": len(head.members), "num_layers": len(head.members[0]), "weights": head.weights,
            "final_relu": head.final_relu, "info": head.info}
    if head.spec is not None:
        meta[spec_lib.KEY] = head.spec.to_dict()
    atomic.write_json(os.path.join(directory, "head.json"), meta)
    return directory


def load(directory: str, meta: dict) -> FrameHead:
    """The head in `directory` whose head.json is `meta` (called by heads.load_head)."""
    js = os.path.join(directory, "head.json")
    with np.load(os.path.join(directory, "head.npz")) as z:
        members = [[{"kernel": z[f"m{j}_layer{i}_kernel"], "bias": z[f"m{j}_layer{i}_bias"]}
                    for i in range(meta["num_layers"])] for j in range(meta["num_members"])]
        mean, scale = z["mean"], z["scale"]
    spec = spec_lib.read(meta, js) if spec_lib.KEY in meta else None
    return FrameHead(meta["label_names"], mean, scale, members, bool(meta.get("multilabel")), spec=spec,
                     weights=meta.get("weights"), final_relu=bool(meta.get("final_relu")), info=meta.get("info", {}))


def read_meta(directory: str) -> dict:
    with open(os.path.join(directory, "head.json")) as f:
        return json.load(f)
