"""JAX's persistent compilation cache: `$VGGISH_JAX_CACHE_DIR` (`0`, `off`, `false`, `no` or empty: off), else
`$XDG_CACHE_HOME/vggish-jax/jax` (`~/.cache/vggish-jax/jax`). Entries are keyed by program, device and versions.
"""
from __future__ import annotations

import os
import sys

ENV = "VGGISH_JAX_CACHE_DIR"
_OFF = {"0", "off", "false", "no", ""}
# Cache programs whose compilation took at least this long: VGGish's forward takes seconds on CPU, while the
# many tiny helper programs (a few ms each) would only fill the folder.
MIN_COMPILE_SECONDS = 0.05


def cache_dir(path: str | os.PathLike | None = None) -> str | None:
    """The folder `enable(path)` would use, or None when the cache is turned off by the environment."""
    if path is not None:
        return os.fspath(path)
    env = os.environ.get(ENV)
    if env is not None:
        return None if env.strip().lower() in _OFF else env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vggish-jax", "jax")


def enable(path: str | os.PathLike | None = None) -> str | None:
    """Point the cache at `cache_dir(path)` (before the first compilation); returns the folder, or None if off.
    Before JAX is imported it only sets environment variables (children inherit them); after, JAX's config."""
    jax = sys.modules.get("jax")
    if path is None:  # a cache the user configured for JAX itself wins
        chosen = jax.config.jax_compilation_cache_dir if jax is not None else os.environ.get("JAX_COMPILATION_CACHE_DIR")
        if chosen:
            return chosen
    folder = cache_dir(path)
    if folder is None:
        return None
    settings = {"jax_compilation_cache_dir": folder,
                "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_SECONDS}
    for name, value in settings.items():
        if jax is not None:
            jax.config.update(name, value)
        else:
            os.environ[name.upper()] = str(value)
    return folder
