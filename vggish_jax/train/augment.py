"""The waveform input path inside the jitted steps: cyclic examples, random crop, gain, mixup, JAX frontend.

Batch: {'waveform': int16 [B, S] at 16 kHz, 'length': int32 [B] valid samples, 'label'}. From crop start c_i,
example j is example (j mod k_i) of the k_i whole ones left: `data.fix_examples`' cyclic padding on samples,
so with augmentation off the log-mels are the stored-mel path's. Draws come from the step's key (resumable).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from vggish_jax.datasets.decode import INT16_SCALE
from vggish_jax.models.vggish import frontend_jax
from vggish_jax.models.vggish.frontend import DEFAULT, FrontendConfig, num_examples  # the one rule (traceable)
from vggish_jax.models.vggish.frontend import samples_for_examples as needed_samples  # n examples' samples
from vggish_jax.train.config import Config


def draw(key: jax.Array, lengths: jax.Array, cfg: Config, fcfg: FrontendConfig = DEFAULT) -> dict[str, jax.Array]:
    """Per clip: crop start, linear gain, mixup weight and partner. Keys fold_in(key, 1..4) are disjoint from
    SpecAugment's split(key), so turning one on moves no other."""
    b = lengths.shape[0]
    out = {"crop": jnp.zeros((b,), jnp.int32), "gain": jnp.ones((b,), jnp.float32),
           "lam": jnp.ones((b,), jnp.float32), "partner": jnp.arange(b, dtype=jnp.int32)}
    if cfg.random_crop:
        slack = jnp.maximum(lengths - needed_samples(cfg.examples_per_clip, fcfg), 0)
        out["crop"] = jax.random.randint(jax.random.fold_in(key, 1), (b,), 0, slack + 1, jnp.int32)
    if cfg.gain_db > 0:
        db = jax.random.uniform(jax.random.fold_in(key, 2), (b,), jnp.float32, -cfg.gain_db, cfg.gain_db)
        out["gain"] = 10.0 ** (db / 20.0)
    if cfg.mixup_alpha > 0:
        out["lam"] = jax.random.beta(jax.random.fold_in(key, 3), cfg.mixup_alpha, cfg.mixup_alpha, (b,), jnp.float32)
        out["partner"] = jax.random.permutation(jax.random.fold_in(key, 4), b).astype(jnp.int32)
    return out


def example_waveforms(waveform: jax.Array, lengths: jax.Array, crop: jax.Array, n_examples: int,
                      fcfg: FrontendConfig = DEFAULT) -> jax.Array:
    """int16 [B, S] -> float32 [B, n, example_samples] in [-1, 1]: the samples of each clip's n examples."""
    b = waveform.shape[0]
    k = jnp.clip(num_examples(lengths - crop, fcfg), 1, n_examples)  # the host refuses clips with no example
    j = jnp.arange(n_examples)
    start = crop[:, None] + (j[None, :] % k[:, None]) * fcfg.example_hop_samples
    idx = (start[..., None] + jnp.arange(fcfg.example_samples)).reshape(b, -1)
    x = jnp.take_along_axis(waveform, idx, axis=1).reshape(b, n_examples, fcfg.example_samples)
    return x.astype(jnp.float32) / INT16_SCALE


def mix_labels(labels: jax.Array, num_classes: int, d: dict[str, jax.Array]) -> jax.Array:
    """Soft targets [B, classes] of mixed clips: lam * own one-hot + (1 - lam) * the partner's."""
    one_hot = jax.nn.one_hot(labels, num_classes)
    lam = d["lam"][:, None]
    return lam * one_hot + (1.0 - lam) * one_hot[d["partner"]]


def waveform_features(batch: dict, key: jax.Array | None, cfg: Config,
                      fcfg: FrontendConfig = DEFAULT) -> tuple[jax.Array, dict[str, jax.Array]]:
    """A waveform batch -> ([B, n, 96, 64] float32 log-mels, the draw). key None: no augmentation (eval)."""
    lengths = batch["length"]
    if key is None:
        key, cfg = jax.random.PRNGKey(0), cfg.replace(random_crop=False, gain_db=0.0, mixup_alpha=0.0)
    d = draw(key, lengths, cfg, fcfg)
    x = example_waveforms(batch["waveform"], lengths, d["crop"], cfg.examples_per_clip, fcfg)
    if cfg.gain_db > 0:
        x = x * d["gain"][:, None, None]
    if cfg.mixup_alpha > 0:
        lam = d["lam"][:, None, None]
        x = lam * x + (1.0 - lam) * x[d["partner"]]
    b, n, t = x.shape
    # The frontend adds no parameters; nothing differentiates through it.
    mel = frontend_jax.waveforms_to_examples(x.reshape(b * n, t), fcfg, precision=cfg.frontend_precision)
    return jax.lax.stop_gradient(mel.reshape(b, n, *mel.shape[2:])), d
