"""MusiCNN (Pons & Serra, `musicnn` 0.1.0, model 'MSD_musicnn') in Flax NNX, inference mode.

Input [batch, 187, 96] log-mel patches (vggish_jax.models.musicnn.frontend). Architecture facts from musicnn's
models.py: input batch norm; front end of two timbral convs (7 x 38 and 7 x 67 over time x frequency, 204
filters, max over frequency) and three temporal convs (128, 64, 32 x 1 'same', 51 filters, max over
frequency), each ReLU then batch norm; mid end of three 7-tap convs over time with 64 filters (ReLU, batch
norm; the 2nd and 3rd residual); back end: max and mean over time of all front- and mid-end channels
(753 x 2, interleaved), batch norm, dense 200 + ReLU, batch norm (the 'penultimate' features), dense 50.
Batch norms use their moving statistics, epsilon 1e-3 (tf.layers' default).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vggish_jax.models import loading

TIMBRAL = (("timbral_74", 38), ("timbral_77", 67))
TEMPORAL = (("temporal_128", 128), ("temporal_64", 64), ("temporal_32", 32))
N_TIMBRAL, N_TEMPORAL, N_MID, N_DENSE = 204, 51, 64, 200
FRONT_CHANNELS = len(TIMBRAL) * N_TIMBRAL + len(TEMPORAL) * N_TEMPORAL  # 561
MID_CHANNELS = FRONT_CHANNELS + 3 * N_MID  # 753


def _bn(n, rngs):
    return nnx.BatchNorm(n, use_running_average=True, epsilon=1e-3, rngs=rngs)


def _same(k: int) -> tuple[int, int]:
    """TF 'same' padding for an even or odd kernel: the extra sample goes after."""
    return (k - 1) // 2, k // 2


class MusiCNN(nnx.Module):
    def __init__(self, num_classes: int = 50, n_mels: int = 96, rngs: nnx.Rngs | None = None):
        rngs = rngs if rngs is not None else nnx.Rngs(0)
        self.input_bn = _bn(1, rngs)
        for name, height in TIMBRAL:
            setattr(self, name, nnx.Conv(1, N_TIMBRAL, (7, int(height / 96 * n_mels)), padding="VALID", rngs=rngs))
            setattr(self, name + "_bn", _bn(N_TIMBRAL, rngs))
        for name, length in TEMPORAL:
            setattr(self, name, nnx.Conv(1, N_TEMPORAL, (length, 1), padding=(_same(length), (0, 0)), rngs=rngs))
            setattr(self, name + "_bn", _bn(N_TEMPORAL, rngs))
        in_ch = FRONT_CHANNELS
        for i in (1, 2, 3):
            setattr(self, f"mid{i}", nnx.Conv(in_ch, N_MID, (7,), padding=((3, 3),), rngs=rngs))
            setattr(self, f"mid{i}_bn", _bn(N_MID, rngs))
            in_ch = N_MID
        self.pool_bn = _bn(2 * MID_CHANNELS, rngs)
        self.dense = nnx.Linear(2 * MID_CHANNELS, N_DENSE, rngs=rngs)
        self.dense_bn = _bn(N_DENSE, rngs)
        self.logits = nnx.Linear(N_DENSE, num_classes, rngs=rngs)

    def features(self, x: jax.Array) -> dict[str, jax.Array]:
        """[batch, 187, 96] -> every named intermediate ('front', 'mid', 'penultimate', 'logits', ...)."""
        x = self.input_bn(x[..., None])
        padded = jnp.pad(x, ((0, 0), (3, 3), (0, 0), (0, 0)))
        front = []
        for name, _ in TIMBRAL:
            front.append(getattr(self, name + "_bn")(nnx.relu(getattr(self, name)(padded))).max(axis=2))
        for name, _ in TEMPORAL:
            front.append(getattr(self, name + "_bn")(nnx.relu(getattr(self, name)(x))).max(axis=2))
        front = jnp.concatenate(front, axis=-1)  # [B, T, 561]
        m1 = self.mid1_bn(nnx.relu(self.mid1(front)))
        m2 = self.mid2_bn(nnx.relu(self.mid2(m1))) + m1
        m3 = self.mid3_bn(nnx.relu(self.mid3(m2))) + m2
        mid = jnp.concatenate([front, m1, m2, m3], axis=-1)  # [B, T, 753]
        max_pool, mean_pool = mid.max(axis=1), mid.mean(axis=1)
        pooled = jnp.stack([max_pool, mean_pool], axis=-1).reshape(mid.shape[0], -1)
        penultimate = self.dense_bn(nnx.relu(self.dense(self.pool_bn(pooled))))
        logits = self.logits(penultimate)
        return {"front": front, "mid1": m1, "mid2": m2, "mid3": m3, "max_pool": max_pool, "mean_pool": mean_pool,
                "penultimate": penultimate, "logits": logits}

    def __call__(self, x: jax.Array) -> jax.Array:
        """[batch, 187, 96] -> [batch, num_classes] tag probabilities (sigmoid)."""
        return jax.nn.sigmoid(self.features(x)["logits"])


def from_flat(params: dict[str, "jax.Array"], num_classes: int = 50) -> MusiCNN:
    """A MusiCNN holding {'module/part': array} params (the converted asset's layout)."""
    make = lambda: MusiCNN(num_classes, rngs=nnx.Rngs(0))  # noqa: E731
    nested: dict = {}
    for key, value in params.items():
        module, part = key.split("/")
        nested.setdefault(module, {})[part] = value
    expected, got = loading.shapes(make), jax.tree.map(lambda a: tuple(a.shape), nested)
    if expected != got:
        raise ValueError(f"MusiCNN params do not match the architecture: expected {expected}, got {got}")
    return loading.from_pure_dict(make, nested)
