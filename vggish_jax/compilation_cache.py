"""How processes here compile: JAX's persistent compilation cache, and XLA:CPU flags.

The cache: `$VGGISH_JAX_CACHE_DIR` (`0`, `off`, `false`, `no` or empty: off), else
`$XDG_CACHE_HOME/vggish-jax/jax` (`~/.cache/vggish-jax/jax`). Entries are keyed by program, device and versions.
The flags keep VGGish off XLA:CPU's batch-size cliffs (measured in experiments/cpu_cliffs.py): jaxlib 0.10.x
hands the whole graph to YNNPACK as one fusion (batch 8 at ~0.14 of the matmul rate, 64 at ~0.6, vs ~0.8 at 16
and 62); giving it only the dots removes the cliffs. Set only for jaxlib 0.10.x; CPU only.
"""
from __future__ import annotations

import os
import sys

ENV = "VGGISH_JAX_CACHE_DIR"
_OFF = {"0", "off", "false", "no", ""}
# Cache programs whose compilation took at least this long: VGGish's forward takes seconds on CPU, while the
# many tiny helper programs (a few ms each) would only fill the folder.
MIN_COMPILE_SECONDS = 0.05
FLAG = "--xla_cpu_experimental_ynn_fusion_type"
CPU_DEFAULT = f"{FLAG}=individual_dot"


def enable(path: str | os.PathLike | None = None) -> str | None:
    """Point the cache at `path`, else as the environment says (before the first compilation); returns the
    folder, or None if off. Before JAX is imported it only sets environment variables (children inherit
    them); after, JAX's config."""
    jax = sys.modules.get("jax")
    if path is None:  # a cache the user configured for JAX itself wins
        chosen = os.environ.get("JAX_COMPILATION_CACHE_DIR") if jax is None else jax.config.jax_compilation_cache_dir
        if chosen:
            return chosen
        env = os.environ.get(ENV)
        if env is not None and env.strip().lower() in _OFF:
            return None
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = env or os.path.join(base, "vggish-jax", "jax")
    folder = os.fspath(path)
    for name, value in {"jax_compilation_cache_dir": folder,
                        "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_SECONDS}.items():
        if jax is not None:
            jax.config.update(name, value)
        else:
            os.environ[name.upper()] = str(value)
    return folder


def apply_xla_flags() -> str | None:
    """Add CPU_DEFAULT to XLA_FLAGS (before the first computation) unless the user set that flag or
    `VGGISH_JAX_XLA_CPU_DEFAULTS=0`; returns what was added (None if nothing)."""
    if os.environ.get("VGGISH_JAX_XLA_CPU_DEFAULTS", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG in flags or not known_jaxlib():
        return None
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_DEFAULT}".strip()
    return CPU_DEFAULT


def known_jaxlib() -> bool:
    """Whether this jaxlib is one the flag was measured on (0.10.x): an XLA that does not know a flag in
    XLA_FLAGS aborts the process, and a later one may fuse differently (measure it with cpu_cliffs first)."""
    from importlib import metadata

    try:
        return metadata.version("jaxlib").split(".")[:2] == ["0", "10"]
    except metadata.PackageNotFoundError:
        return False
