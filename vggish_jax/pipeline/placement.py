"""Where resampling to 16 kHz runs: on the host, in the decode workers, or on the device, in the parent.

The one rule (`resample_on_device`): "auto" resamples on the device when JAX's default backend is an
accelerator and on the host otherwise. Why: from mp3 the host is the bound (decode + resample per clip)
and resampling is about a third of that host work, so on a GPU/TPU host it moves to the otherwise idle
device. On CPU the "device" is the same cores, so moving the work frees nothing: end to end the two
measured within 5% of each other on a 2-core CPU (device 4-5% faster: results/resample-placement-2core-
cpu.json), too small a gain, from one run on a shared machine, to change the CPU default, which also sends
2.76x smaller arrays (16 kHz, not 44.1 kHz) back from decode workers. Either way the embeddings agree to
float rounding (1.3e-6 of their scale), so the setting is not part of the EmbeddingSpec.

Imports no jax at module level, so the CLI can name the choices cheaply.
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
