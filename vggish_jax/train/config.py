"""Fine-tuning configuration. Defaults reproduce the paper's recipe (Adam 1e-3, batch 8, 11 epochs, a
3968 -> 256 -> classes head on the 31 x 128 flattened embeddings, ReLU after VGGish's last layer)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = 11
    batch_size: int = 8  # global, in clips; must divide by the device count
    learning_rate: float = 1e-3
    schedule: str = "constant"  # constant | cosine | warmup_cosine
    warmup_steps: int = 0
    weight_decay: float = 0.0  # > 0: AdamW
    label_smoothing: float = 0.0
    freeze_conv: bool = False  # train only the fully connected layers and the head
    spec_augment: bool = False  # one random time mask (<= 20 frames) and frequency mask (<= 8 bins) per example
    dtype: str = "float32"  # compute dtype of VGGish: float32 | bfloat16 (params stay float32)
    grad_accum: int = 1  # optimizer steps every N batches (global batch x N per update)
    head: str = "flatten"  # flatten (the paper's 31 x 128 -> 256 -> classes) | frame_mean (frame logits averaged)
    head_hidden: int = 256
    examples_per_clip: int = 31
    final_relu: bool = True
    width_divisor: int = 1  # > 1: a same-shaped smaller VGGish (tests); 1 = the real one
    init: str = "pretrained"  # pretrained (from --weights) | random
    seed: int = 0
    checkpoint_every: int = 100  # steps; also at every epoch end
    prefetch: int = 2
    distributed: bool = False  # call jax.distributed.initialize() (multi-host); implied by JAX_COORDINATOR_ADDRESS

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)


def parse_overrides(cfg: Config, items: list[str]) -> Config:
    """['epochs=3', 'freeze_conv=true', ...] -> a new Config, with types taken from the dataclass."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    kw = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"bad override {item!r}: use key=value with key in {sorted(fields)}")
        kind = type(getattr(cfg, key))
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{key} takes true/false, got {value!r}")
            kw[key] = value.lower() in ("true", "1")
        else:
            kw[key] = kind(value)
    return cfg.replace(**kw)
