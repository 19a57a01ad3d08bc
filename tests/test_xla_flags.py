"""XLA:CPU defaults (vggish_jax/compilation_cache.py): a user's own flag wins, the opt-out works, and VGGish
computes the same embeddings with them as with XLA's defaults (the oracle: the same model compiled without the flag),
while the compiled program no longer hands the whole network to YNNPACK as one fusion."""
import os
import subprocess
import sys

import numpy as np
import pytest

from vggish_jax.compilation_cache import CPU_DEFAULT, FLAG, apply_xla_flags, known_jaxlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import re, sys, numpy as np, jax
from flax import nnx
from vggish_jax import compilation_cache
compilation_cache.apply_xla_flags()
from vggish_jax.models.vggish import modeling
g, s = nnx.split(modeling.build(modeling.random(0)))
f = jax.jit(lambda s, x: nnx.merge(g, s)(x))
x = np.random.default_rng(0).standard_normal((8, 96, 64)).astype(np.float32)
hlo = f.lower(s, x).compile().as_text()
entry = hlo[hlo.index("ENTRY"):]
print("ENTRY_CONVS", len(re.findall(r"= \S+ convolution\(", entry)))
np.save(sys.argv[1], np.asarray(f(s, x)))
"""


def run_child(out, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "VGGISH_JAX_XLA_CPU_DEFAULTS")}
    e.update(env, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out)], env=e, capture_output=True, text=True, check=True)
    return proc.stdout, np.load(out)


@pytest.mark.skipif(not known_jaxlib(), reason="the flag is set only on the jaxlib it was measured on")
def test_same_embeddings_as_xla_defaults(tmp_path):
    log_default, default = run_child(tmp_path / "d.npy", VGGISH_JAX_XLA_CPU_DEFAULTS="0")
    log, ours = run_child(tmp_path / "o.npy")
    np.testing.assert_allclose(ours, default, rtol=1e-4, atol=1e-4 * np.abs(default).max())
    # XLA's default buries all six convolutions in one YNNPACK fusion; with the flag it runs them itself
    assert "ENTRY_CONVS 0" in log_default and "ENTRY_CONVS 6" in log


def test_a_users_flag_wins_and_the_opt_out_works(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"{FLAG}=eltwise --xla_force_host_platform_device_count=2")
    assert apply_xla_flags() is None
    assert os.environ["XLA_FLAGS"] == f"{FLAG}=eltwise --xla_force_host_platform_device_count=2"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    monkeypatch.setenv("VGGISH_JAX_XLA_CPU_DEFAULTS", "0")
    assert apply_xla_flags() is None and os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"
    monkeypatch.setenv("VGGISH_JAX_XLA_CPU_DEFAULTS", "1")
    if known_jaxlib():
        assert apply_xla_flags() == CPU_DEFAULT
        assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {CPU_DEFAULT}"
