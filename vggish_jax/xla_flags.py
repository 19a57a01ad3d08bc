"""XLA:CPU settings that keep VGGish off its batch-size cliffs (measured in experiments/cpu_cliffs.py).

jaxlib 0.10's CPU compiler hands the whole VGGish graph to YNNPACK as ONE fusion, which runs batch 8 at ~0.14
of the machine's matmul rate and batch 64 at ~0.6, against ~0.8 at 16 and 62. Giving YNNPACK only the dots
(each on its own; XLA runs the convolutions) removes those cliffs. The flag is XLA:CPU's alone: GPU and TPU
ignore it; it is set only for the jaxlib it was measured on (0.10.x).
"""
from __future__ import annotations

import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
CPU_DEFAULT = f"{FLAG}=individual_dot"


def apply() -> str | None:
    """Add CPU_DEFAULT to XLA_FLAGS unless the user set that flag; returns what was added (None if nothing).

    XLA reads XLA_FLAGS when its first backend starts, so call before the first computation (cli.main does).
    `VGGISH_JAX_XLA_CPU_DEFAULTS=0` leaves XLA_FLAGS untouched."""
    if os.environ.get("VGGISH_JAX_XLA_CPU_DEFAULTS", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG in flags or not _known():
        return None
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_DEFAULT}".strip()
    return CPU_DEFAULT


def _known() -> bool:
    """Whether this jaxlib is one the flag was measured on (0.10.x): an XLA that does not know a flag in
    XLA_FLAGS aborts the process, and a later one may fuse differently (measure it with cpu_cliffs first)."""
    from importlib import metadata

    try:
        return metadata.version("jaxlib").split(".")[:2] == ["0", "10"]
    except metadata.PackageNotFoundError:
        return False
