"""The persistent compilation cache: where it goes, that a second process loads instead of compiling (JAX's own
cache-hit log is the oracle), and that `off` and a user's own JAX setting are respected. Fresh processes, since
JAX initialises its cache once per process."""
import os
import subprocess
import sys

import pytest

from vggish_jax import compilation_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The threshold is lowered after enable() so this small program is cached; JAX logs each hit/miss at DEBUG.
CHILD = r"""
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
logging.getLogger("jax._src.compiler").setLevel(logging.DEBUG)
from vggish_jax import compilation_cache
print("FOLDER", compilation_cache.enable())
import jax, jax.numpy as jnp
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
print(float(jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((8, 8)))))
"""


def child(tmp_path, **env) -> str:
    e = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", compilation_cache.ENV)}
    e.update(env, PYTHONPATH=ROOT, XDG_CACHE_HOME=str(tmp_path / "xdg"), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", CHILD], env=e, capture_output=True, text=True, check=True).stdout


def test_second_process_loads_from_the_cache(tmp_path):
    folder = tmp_path / "c"
    first = child(tmp_path, VGGISH_JAX_CACHE_DIR=str(folder))
    assert f"FOLDER {folder}" in first and "PERSISTENT COMPILATION CACHE MISS" in first
    assert any(name.startswith("jit_") for name in os.listdir(folder))
    second = child(tmp_path, VGGISH_JAX_CACHE_DIR=str(folder))
    assert "Persistent compilation cache hit" in second and "CACHE MISS" not in second
    assert first.splitlines()[-1] == second.splitlines()[-1]  # the loaded program computes the same


def test_default_folder_is_under_the_user_cache_dir(tmp_path):
    out = child(tmp_path)
    folder = tmp_path / "xdg" / "vggish-jax" / "jax"
    assert f"FOLDER {folder}" in out and os.listdir(folder)


@pytest.mark.parametrize("value", ["0", "off", "OFF"])
def test_off_writes_nothing(tmp_path, value):
    child(tmp_path, VGGISH_JAX_CACHE_DIR=value)
    again = child(tmp_path, VGGISH_JAX_CACHE_DIR=value)
    assert "FOLDER None" in again and "cache hit" not in again
    assert not (tmp_path / "xdg").exists()


def test_a_cache_set_for_jax_itself_wins(tmp_path):
    mine = tmp_path / "mine"
    out = child(tmp_path, JAX_COMPILATION_CACHE_DIR=str(mine))
    assert f"FOLDER {mine}" in out and os.listdir(mine) and not (tmp_path / "xdg").exists()
