"""One-way layers and no import cycles: pyproject.toml's import-linter contracts hold for every top-level package
of the repository (the installed vggish_jax, and benchmarks/ and experiments/ above it), and they do catch a new
back edge or cycle (also one hidden inside a function), as shown on a copy with one added."""
import os
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def importlinter() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]


def lint(root: str) -> subprocess.CompletedProcess:
    """`lint-imports` on the packages under root, with root's pyproject.toml (no cache: copies change)."""
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run([LINT, "--no-logo", "--no-cache", os.path.join(root, "pyproject.toml")], cwd=root,
                          env=env, capture_output=True, text=True)


def copy_with(tmp_path, module: str, code: str) -> str:
    """A copy of every root package and pyproject.toml with `code` appended to `module` (a path under the root)."""
    root = str(tmp_path / "copy")
    for package in importlinter()["root_packages"]:
        shutil.copytree(os.path.join(ROOT, package), os.path.join(root, package),
                        ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), root)
    with open(os.path.join(root, module), "a") as f:
        f.write("\n" + code)
    return root


def test_every_top_level_package_is_checked():
    """A new top-level package must be named in root_packages and in the acyclic contract's ancestors."""
    packages = {d for d in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, d, "__init__.py"))}
    config = importlinter()
    assert {"vggish_jax", "benchmarks", "experiments"} <= packages
    assert set(config["root_packages"]) == packages
    (acyclic,) = [c for c in config["contracts"] if c["type"] == "acyclic_siblings"]
    assert set(acyclic["ancestors"]) == packages
    assert not [c["id"] for c in config["contracts"] if "ignore_imports" in c]  # no exceptions


def test_contracts_hold():
    r = lint(ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "3 kept, 0 broken" in r.stdout


def test_a_lazy_back_edge_is_caught(tmp_path):
    """The core reaching up into an application from inside a function breaks the layers contract."""
    r = lint(copy_with(tmp_path, "vggish_jax/audio/decode.py", "def _late():\n    from vggish_jax.train import loop  # noqa\n"))
    assert r.returncode == 1
    assert "Imports point down" in r.stdout and "BROKEN" in r.stdout
    assert "vggish_jax.audio.decode -> vggish_jax.train.loop" in r.stdout


def test_the_package_importing_a_benchmark_is_caught(tmp_path):
    r = lint(copy_with(tmp_path, "vggish_jax/audio/decode.py", "def _late():\n    from benchmarks import common  # noqa\n"))
    assert r.returncode == 1
    assert "never imports the repository's benchmarks or experiments BROKEN" in r.stdout, r.stdout[-3000:]
    assert "vggish_jax is not allowed to import benchmarks" in r.stdout
    assert "vggish_jax.audio.decode -> benchmarks.common" in r.stdout


def test_a_benchmark_importing_an_experiment_is_caught(tmp_path):
    r = lint(copy_with(tmp_path, "benchmarks/common.py", "def _late():\n    from experiments import startup  # noqa\n"))
    assert r.returncode == 1
    assert "benchmarks.common -> experiments.startup" in r.stdout and "2 kept, 1 broken" in r.stdout, r.stdout[-3000:]


def test_a_cycle_inside_one_layer_is_caught(tmp_path):
    """train.config <-> train.loop: allowed by the layers, refused as a cycle."""
    r = lint(copy_with(tmp_path, "vggish_jax/train/config.py",
                       "def _late():\n    from vggish_jax.train import loop  # noqa\n"))
    assert r.returncode == 1
    out = r.stdout
    assert "Imports point down" in out and "No import cycles" in out
    assert "2 kept, 1 broken" in out, out[-3000:]
    assert ".config -> .loop" in out or ".loop -> .config" in out, out[-3000:]


def test_a_cycle_inside_the_benchmarks_is_caught(tmp_path):
    """common <-> throughput: the acyclic contract covers the new top-level packages too."""
    r = lint(copy_with(tmp_path, "benchmarks/common.py", "def _late():\n    from benchmarks import throughput  # noqa\n"))
    assert r.returncode == 1
    assert "No import cycles" in r.stdout and "2 kept, 1 broken" in r.stdout, r.stdout[-3000:]
    assert "No cycles are allowed in benchmarks" in r.stdout and ".common -> .throughput" in r.stdout, r.stdout[-3000:]
