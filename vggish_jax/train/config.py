"""Fine-tuning configuration. Defaults reproduce the paper's recipe (Adam 1e-3, batch 8, 11 epochs, a
(examples x 128) -> 256 -> classes head on the flattened embeddings of a 30-s clip, 31 x 128 = 3968-d);
augmentation is off by default."""
from __future__ import annotations

import dataclasses

# FMA's 30-s clips (the paper's input), from the frontend's one timing rule.
from vggish_jax.models.vggish.frontend import CLIP_SAMPLES, EXAMPLES_PER_CLIP


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = 11
    # Clips per optimizer step, over all devices and processes (each clip is examples_per_clip VGGish
    # examples, so a step sees batch_size x examples_per_clip examples); must divide by the device count.
    batch_size: int = 8
    learning_rate: float = 1e-3
    schedule: str = "constant"  # constant | cosine | warmup_cosine
    warmup_steps: int = 0
    weight_decay: float = 0.0  # > 0: AdamW
    label_smoothing: float = 0.0
    freeze_conv: bool = False  # train only the fully connected layers and the head
    dtype: str = "float32"  # compute dtype of VGGish: float32 | bfloat16 (params stay float32)
    grad_accum: int = 1  # optimizer steps every N batches (global batch x N per update)
    head: str = "flatten"  # flatten (the paper's examples x 128 -> 256 -> classes) | frame_mean (frame logits averaged)
    head_hidden: int = 256
    examples_per_clip: int = EXAMPLES_PER_CLIP
    # None: the value recorded in the weights' metadata.json (init=random: True, the paper's recipe).
    final_relu: bool | None = None
    width_divisor: int = 1  # > 1: a same-shaped smaller VGGish (tests); 1 = the real one
    init: str = "pretrained"  # pretrained (from --weights) | random
    seed: int = 0
    checkpoint_every: int = 100  # steps; also at every epoch end
    prefetch: int = 2  # batches made ready (on the devices) ahead of the step, in a background thread
    loader_workers: int = 0  # grain worker processes reading and batching records (0: a thread of this one)
    # Input: "waveform" sends the 16 kHz int16 audio to the device and runs the JAX frontend inside the train
    # step; "mel" uses the stored log-mels; "auto" takes the waveform when the records carry one.
    input: str = "auto"
    frontend_precision: str = "auto"  # of the device frontend: auto | float32 | float64 (see frontend_jax)
    # Augmentation, all on device and a function of (seed, step). The first three need waveform input.
    random_crop: bool = False  # crop start drawn per clip at sample resolution inside its first max_clip_samples
    max_clip_samples: int = CLIP_SAMPLES  # with random_crop: samples of each clip sent to the device
    gain_db: float = 0.0  # > 0: a gain drawn per clip, uniform in [-gain_db, +gain_db] dB
    mixup_alpha: float = 0.0  # > 0: mixup, each clip mixed with a random partner, weight ~ Beta(alpha, alpha)
    spec_augment: bool = False  # one random time mask (<= 20 frames) and frequency mask (<= 8 bins) per example

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)

    @property
    def audio_augment(self) -> bool:
        return self.random_crop or self.gain_db > 0 or self.mixup_alpha > 0

    def check(self) -> None:
        """One-line errors for settings that cannot work, before anything is built."""
        choices = {"input": ("auto", "mel", "waveform"), "frontend_precision": ("auto", "float32", "float64"),
                   "init": ("pretrained", "random"), "dtype": ("float32", "bfloat16"),
                   "head": ("flatten", "frame_mean"), "schedule": ("constant", "cosine", "warmup_cosine")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if self.gain_db < 0 or self.mixup_alpha < 0:
            raise ValueError("gain_db and mixup_alpha must be >= 0 (0 turns them off)")


def parse_overrides(cfg: Config, items: list[str]) -> Config:
    """['epochs=3', 'freeze_conv=true', ...] -> a new Config, with types taken from the dataclass."""
    types = {f.name: str(f.type) for f in dataclasses.fields(Config)}  # annotations are strings: "bool | None"
    kw = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise ValueError(f"bad override {item!r}: use key=value with key in {sorted(types)}")
        kind = types[key].split("|")[0].strip()
        if "None" in types[key] and value.lower() in ("none", "auto"):
            kw[key] = None
        elif kind == "bool":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{key} takes true/false, got {value!r}")
            kw[key] = value.lower() in ("true", "1")
        else:
            try:
                kw[key] = {"int": int, "float": float, "str": str}[kind](value)
            except ValueError:
                raise ValueError(f"{key} takes a{'n' if kind == 'int' else ''} {kind}, got {value!r}") from None
    return cfg.replace(**kw)
