"""XLA:CPU settings that keep VGGish off its batch-size cliffs (measured in experiments/cpu_cliffs.py).
jaxlib 0.10.x hands the whole graph to YNNPACK as one fusion (batch 8 at ~0.14 of the matmul rate, 64 at ~0.6,
vs ~0.8 at 16 and 62); giving it only the dots removes the cliffs. Set only for jaxlib 0.10.x; CPU only.
"""
from __future__ import annotations

import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
CPU_DEFAULT = f"{FLAG}=individual_dot"


def apply() -> str | None:
    """Add CPU_DEFAULT to XLA_FLAGS (before the first computation) unless the user set that flag or
    `VGGISH_JAX_XLA_CPU_DEFAULTS=0`; returns what was added (None if nothing)."""
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
