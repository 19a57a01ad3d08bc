"""JAX-MLP: standardised mean+std pooled embeddings -> MLP (AdamW, dropout, the best validation epoch kept),
saved without pickle (head_check.write); `load_head` reads either head kind and `evaluate_head` scores one on a
store. `vggish-jax predict --head` rebuilds it exactly, refusing embeddings of another EmbeddingSpec."""
from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vggish_jax import spec as spec_lib
from vggish_jax.classify import features, fit, head_check, metrics
from vggish_jax.pipeline import store


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    hidden: tuple[int, ...] = (256,)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.3
    batch_size: int = 64
    max_epochs: int = 200
    patience: int = 20
    seed: int = 0


def _apply(layers, x, *, dropout=0.0, key=None):
    return fit.relu_layers(layers[:-1], x, dropout, key) @ layers[-1]["kernel"] + layers[-1]["bias"]


@dataclasses.dataclass
class Head:
    label_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    layers: list[dict]
    feature: str = "mean_std"
    final_relu: bool = False
    weights: str | None = None
    info: dict = dataclasses.field(default_factory=dict)
    spec: spec_lib.EmbeddingSpec | None = None  # how the training embeddings were made (None: an old head)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(_apply(self.layers, jnp.asarray((x - self.mean) / self.scale, jnp.float32)))

    def predict_proba_features(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(jax.nn.softmax(self.logits(x), axis=-1))

    def predict_proba(self, clips: list[np.ndarray]) -> np.ndarray:
        """Per-clip [n, 128] float embeddings -> [clips, classes] probabilities."""
        return self.predict_proba_features(features.mean_std(clips))


def train_head(x_train, y_train, x_val, y_val, label_names, cfg: HeadConfig = HeadConfig(), epochs: int | None = None,
               **meta) -> Head:
    """Fit on train; validation accuracy picks the epoch (classify.fit). With `epochs` and x_val None it trains
    exactly that many epochs (`refit`)."""
    if (x_val is None) != (epochs is not None):
        raise ValueError("give either validation features (early stopping) or a fixed number of epochs")
    x_train = np.asarray(x_train, np.float32)
    y_train = jnp.asarray(np.asarray(y_train))
    mean, scale = x_train.mean(0), x_train.std(0) + 1e-6
    xt = jnp.asarray((x_train - mean) / scale)
    key, init_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    layers, sizes = [], (xt.shape[1], *cfg.hidden, len(label_names))
    for a, b in zip(sizes[:-1], sizes[1:]):
        init_key, sub = jax.random.split(init_key)
        layers.append(fit.dense(sub, a, b))
    opt = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)

    @jax.jit
    def step(layers, state, xb, yb, key):
        def loss_fn(p):
            logits = _apply(p, xb, dropout=cfg.dropout, key=key)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        loss, grads = jax.value_and_grad(loss_fn)(layers)
        updates, state = opt.update(grads, state, layers)
        return optax.apply_updates(layers, updates), state, loss

    validation = None
    if x_val is not None:
        xv = jnp.asarray((np.asarray(x_val, np.float32) - mean) / scale)
        probs = jax.jit(lambda p: jax.nn.softmax(_apply(p, xv), -1))
        validation = fit.Validation(probs, np.asarray(y_val), cfg.patience)
    r = fit.fit(layers, opt.init(layers), step, lambda idx: (xt[idx], y_train[idx]), xt.shape[0],
                batch_size=cfg.batch_size, epochs=cfg.max_epochs if epochs is None else epochs, seed=cfg.seed,
                key=key, validation=validation)
    info = {"best_epoch": r.best_epoch, "best_val_score": r.best_score, "metric": "accuracy", "history": r.history,
            "config": dataclasses.asdict(cfg)}
    return Head(list(label_names), mean, scale, r.params, info=info, **meta)


def refit(head: Head, x, y) -> Head:
    """`head`'s recipe refitted on (x, y), e.g. train + validation, for the epochs validation chose."""
    return train_head(x, y, None, None, head.label_names, fit.config(HeadConfig, head.info),
                      epochs=head.info["best_epoch"] + 1, feature=head.feature, final_relu=head.final_relu,
                      weights=head.weights, spec=head.spec)


def save_head(directory: str, head: Head) -> str:
    return head_check.write(directory, head, [head.layers], [""])


def load_head(directory: str):
    """A saved Head, or a frame_head.FrameHead (head.json kind "frames"), checked first (classify.head_check)."""
    meta, arrays = head_check.read(directory)
    if meta.get("kind") == "frames":
        from vggish_jax.classify import frame_head
        return frame_head.load(directory, meta, arrays)
    head_check.known(meta, "feature", ("mean_std",), directory)  # the only feature predict_proba builds
    keys = head_check.layer_keys([""], head_check.positive_int(meta, "num_layers", directory))
    spec = head_check.check(directory, meta, arrays, keys, lambda d, kernels: [d] + [k.shape[-1] for k in kernels[:-1]])
    return Head(meta["label_names"], arrays["mean"], arrays["scale"], head_check.layers(arrays, keys)[0],
                feature=meta["feature"], final_relu=bool(meta.get("final_relu")), weights=meta.get("weights"),
                info=meta.get("info", {}), spec=spec)


def evaluate_head(head_dir: str, store_dir: str, split: str = "test") -> dict:
    """A saved head's scores on a labelled store's split (`vggish-jax predict --head H --embeddings STORE`); the
    store's EmbeddingSpec and classes must be the head's; scored as the table (classify.metrics)."""
    head = load_head(head_dir)
    head_json = os.path.join(head_dir, "head.json")
    info = store.read_info(store_dir)
    info_path = os.path.join(store_dir, store.INFO)
    if head.spec is None:
        raise spec_lib.SpecMismatch(f"{head_json}: records no embedding spec (written by an older vggish-jax); "
                                    f"retrain it with `vggish-jax compare`")
    spec_lib.require_compatible(head.spec, store.spec_of(info, info_path), expected_from=head_json,
                                found_from=info_path)
    names = list(info["label_names"])
    if names != list(head.label_names):
        raise ValueError(f"{info_path} labels {names[:4]}... but head {head_json} predicts "
                         f"{list(head.label_names)[:4]}...; score a head on a store of the same classes")
    if not store.shard_paths(store_dir, split):  # e.g. a cross-validation store: one split 'all'
        have = sorted(d for d in os.listdir(store_dir) if store.shard_paths(store_dir, d))
        if have:
            raise ValueError(f"{store_dir}: has no {split!r} split to score the head on (its splits: "
                             f"{', '.join(have)}); --embeddings scores a held-out split: give a store that has a "
                             f"{split} split (`vggish-jax extract --dataset fma/small`, a GTZAN folder with "
                             f"`--split gtzan-filtered`, or a labels CSV with a split column)")
    data = store.load_split(store_dir, split)
    probs = head.predict_proba([np.asarray(e, np.float32) for e in data.embeddings])
    y = np.asarray(data.labels)
    r = {"head": os.path.abspath(head_dir), "embeddings": os.path.abspath(store_dir), "split": split,
         "clips": len(y), "label_names": names}
    r.update(metrics.score_pair(y, probs if y.ndim == 2 else probs.argmax(-1)))
    return r


def describe_scores(r: dict) -> str:
    scores = ", ".join(f"{k} {r[k]:.4f}" for k in ("accuracy", "macro_f1", "mAP", "roc_auc") if k in r)
    return f"{r['head']} on {r['embeddings']} ({r['split']}, {r['clips']} clips): {scores}"
