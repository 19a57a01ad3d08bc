"""The genre classifier (VGGish backbone + a clip head), its optimizer, and pure train and eval steps over
(params, opt_state), jitted once by the loop with donated state."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from vggish_jax.models.vggish.modeling import CONV_CHANNELS, VGGish
from vggish_jax.train import augment
from vggish_jax.train.config import EXAMPLES_PER_CLIP, Config


class GenreClassifier(nnx.Module):
    """Config.head: "flatten" (the paper's: the examples_per_clip x 128 embeddings flattened, 3968-d for 30 s,
    -> 256 -> classes) or "frame_mean" (128 -> 256 -> classes per frame, logits averaged)."""

    def __init__(self, num_classes: int, *, examples_per_clip: int = EXAMPLES_PER_CLIP, hidden: int = 256,
                 final_relu: bool = True, dtype=jnp.float32, width_divisor: int = 1, head: str = "flatten",
                 rngs: nnx.Rngs):
        if head not in ("flatten", "frame_mean"):
            raise ValueError(f"head must be flatten or frame_mean, got {head!r}")
        self.head = head
        self.backbone = VGGish(final_relu=final_relu, dtype=dtype, width_divisor=width_divisor, rngs=rngs)
        self.hidden = nnx.Linear((examples_per_clip if head == "flatten" else 1) * 128, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, mel: jax.Array) -> jax.Array:
        """[batch, examples, 96, 64] -> [batch, classes] logits (float32)."""
        b, n = mel.shape[:2]
        emb = self.backbone(mel.reshape(b * n, *mel.shape[2:])).astype(jnp.float32)
        if self.head == "frame_mean":
            return self.out(nnx.relu(self.hidden(emb.reshape(b, n, -1)))).mean(axis=1)
        return self.out(nnx.relu(self.hidden(emb.reshape(b, -1))))


def make_optimizer(cfg: Config, steps_per_epoch: int, params) -> optax.GradientTransformation:
    total = max(1, cfg.epochs * steps_per_epoch // cfg.grad_accum)
    lr = cfg.learning_rate  # schedule "constant"; Config.check refuses an unknown one
    if cfg.schedule == "cosine":
        lr = optax.cosine_decay_schedule(cfg.learning_rate, total)
    elif cfg.schedule == "warmup_cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(1, cfg.warmup_steps), total)
    opt = optax.adamw(lr, weight_decay=cfg.weight_decay) if cfg.weight_decay else optax.adam(lr)
    if cfg.freeze_conv:
        convs = {name for name, _ in CONV_CHANNELS}  # params paths: ('backbone', 'conv1', 'kernel'), ('out', 'bias')
        label = lambda path, _: "frozen" if path[0].key == "backbone" and path[1].key in convs else "train"
        opt = optax.multi_transform({"train": opt, "frozen": optax.set_to_zero()},
                                    jax.tree_util.tree_map_with_path(label, params))
    if cfg.grad_accum > 1:
        opt = optax.MultiSteps(opt, every_k_schedule=cfg.grad_accum)
    return opt


def spec_augment(key, mel):
    """One time mask (<= 20 frames) and one frequency mask (<= 8 bins) per example."""
    b, n, t, f = mel.shape
    k1, k2, k3, k4 = jax.random.split(key, 4)
    tw = jax.random.randint(k1, (b, n, 1, 1), 0, 21)
    t0 = jax.random.randint(k2, (b, n, 1, 1), 0, t)
    fw = jax.random.randint(k3, (b, n, 1, 1), 0, 9)
    f0 = jax.random.randint(k4, (b, n, 1, 1), 0, f)
    ti = jnp.arange(t)[None, None, :, None]
    fi = jnp.arange(f)[None, None, None, :]
    masked = ((ti >= t0) & (ti < t0 + tw)) | ((fi >= f0) & (fi < f0 + fw))
    return jnp.where(masked, mel.mean(axis=(2, 3), keepdims=True), mel)


def make_steps(graphdef, cfg: Config, opt: optax.GradientTransformation, num_classes: int):
    """(train_step(state, batch, key), eval_step(params, batch)); a batch holds 'mel' or 'waveform' + 'length'."""
    def inputs(batch, key):
        """Log-mels and soft targets of a batch; key None: evaluation (no augmentation)."""
        labels = jax.nn.one_hot(batch["label"], num_classes)
        if "waveform" in batch:
            mel, d = augment.waveform_features(batch, key, cfg)
            if key is not None and cfg.mixup_alpha > 0:
                labels = augment.mix_labels(batch["label"], num_classes, d)
        else:
            mel = batch["mel"]
        if key is not None and cfg.spec_augment:
            mel = spec_augment(key, mel)
        return mel, labels

    def loss_fn(params, mel, labels, label):
        logits = nnx.merge(graphdef, params)(mel)
        loss = optax.softmax_cross_entropy(logits, optax.smooth_labels(labels, cfg.label_smoothing)).mean()
        return loss, (jnp.argmax(logits, -1) == label).mean()

    def train_step(state, batch, key):
        params, opt_state = state
        mel, labels = inputs(batch, key)
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, mel, labels, batch["label"])
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), {"loss": loss, "accuracy": acc}

    def eval_step(params, batch):
        mel, _ = inputs(batch, None)
        logits = nnx.merge(graphdef, params)(mel)
        correct = (jnp.argmax(logits, -1) == batch["label"]) * batch["mask"]
        return {"correct": correct.sum(), "count": batch["mask"].sum(), "predictions": jnp.argmax(logits, -1)}

    return train_step, eval_step
