"""Where resampling to 16 kHz runs: on the host, in the decode workers, or on the device, in the parent.

"auto" resamples on the device when JAX's backend is an accelerator (the host, bound by decoding mp3, sheds a
third of its work), else on the host (on CPU the same cores: within 5%, results/resample-placement-2core-cpu.json).
Embeddings agree to float rounding, so it is not part of the EmbeddingSpec. No jax import at module level.
"""
from __future__ import annotations

RESAMPLE_CHOICES = ("auto", "host", "device")
ACCELERATOR_BACKENDS = ("gpu", "cuda", "rocm", "tpu")


def resample_on_device(setting: str = "auto") -> bool:
    """True when files not at 16 kHz are resampled on the device (see the module doc for the auto rule)."""
    if setting not in RESAMPLE_CHOICES:
        raise ValueError(f"resample={setting!r}: choose one of {', '.join(RESAMPLE_CHOICES)}")
    if setting != "auto":
        return setting == "device"
    import jax

    return jax.default_backend() in ACCELERATOR_BACKENDS
