"""One-way layers and no import cycles: pyproject.toml's import-linter contracts hold for the package, and they
do catch a new back edge or cycle (also one hidden inside a function), as shown on a copy with one added."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def lint(root: str) -> subprocess.CompletedProcess:
    """`lint-imports` on the package under root, with root's pyproject.toml (no cache: copies change)."""
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([LINT, "--no-logo", "--no-cache", os.path.join(root, "pyproject.toml")], cwd=root,
                          env=env, capture_output=True, text=True)


def copy_with(tmp_path, module: str, code: str) -> str:
    """A copy of the package and pyproject.toml with `code` appended to `module` (a path under vggish_jax/)."""
    root = str(tmp_path / "copy")
    shutil.copytree(os.path.join(ROOT, "vggish_jax"), os.path.join(root, "vggish_jax"),
                    ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), root)
    with open(os.path.join(root, "vggish_jax", module), "a") as f:
        f.write("\n" + code)
    return root


def test_contracts_hold():
    r = lint(ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_a_lazy_back_edge_is_caught(tmp_path):
    """The core reaching up into an application from inside a function breaks the layers contract."""
    r = lint(copy_with(tmp_path, "audio/decode.py", "def _late():\n    from vggish_jax.train import loop  # noqa\n"))
    assert r.returncode == 1
    assert "Imports point down" in r.stdout and "BROKEN" in r.stdout
    assert "vggish_jax.audio.decode -> vggish_jax.train.loop" in r.stdout


def test_a_cycle_inside_one_layer_is_caught(tmp_path):
    """train.config <-> train.loop: allowed by the layers, refused as a cycle."""
    r = lint(copy_with(tmp_path, "train/config.py", "def _late():\n    from vggish_jax.train import loop  # noqa\n"))
    assert r.returncode == 1
    out = r.stdout
    assert "Imports point down" in out and "No import cycles" in out
    assert "1 kept, 1 broken" in out, out[-3000:]
    assert ".config -> .loop" in out or ".loop -> .config" in out, out[-3000:]
