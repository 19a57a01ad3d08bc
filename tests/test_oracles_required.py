"""Oracle packages of the test extra are required, not skipped: a missing one fails with its install line
(tests/conftest.py's `require`); the TensorFlow parity tests, whose fixture needs a TF venv that only .ci/run
builds, skip in the README's command but the summary says how many and why. Shown on tiny suites run by
pytest in a subprocess with the real conftest loaded as a plugin."""
import os
import subprocess
import sys

import pytest

from conftest import INSTALL_TEST_EXTRA, TF_PARITY_FILE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MISSING = """from conftest import require

oracle = require("no_such_oracle_package", "the oracle is no_such_oracle_package")

def test_uses_it(): pass
"""
TF_TINY = """import pytest

@pytest.fixture
def fixture_dir():
    pytest.skip("VGGISH_JAX_TF_FIXTURE is not set: .ci/run sets it")

@pytest.mark.parametrize("i", [0, 1, 2])
def test_parity(fixture_dir, i): pass

def test_plain(): pass
"""


def run_tiny(tmp_path, files: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_a_missing_oracle_fails_with_the_install_line(tmp_path):
    r = run_tiny(tmp_path, {"test_needs_oracle.py": MISSING}, "-n", "0")
    assert r.returncode != 0 and "skipped" not in r.stdout
    assert (f"no_such_oracle_package is missing (No module named 'no_such_oracle_package'); the oracle is "
            f"no_such_oracle_package: install the test extra with {INSTALL_TEST_EXTRA}") in r.stdout


def test_the_oracles_are_installed_here():
    from conftest import require

    for module in ("torch", "torchvggish", "resampy", "apache_beam", "safetensors"):
        require(module, "the test extra")


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_summary_counts_the_skipped_tensorflow_parity_tests(tmp_path, workers):
    r = run_tiny(tmp_path, {TF_PARITY_FILE: TF_TINY}, "-n", workers)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "1 passed, 3 skipped" in r.stdout
    assert "3 TensorFlow parity tests skipped: VGGISH_JAX_TF_FIXTURE is not set: .ci/run sets it" in r.stdout


def test_a_run_without_skips_has_nothing_to_add(tmp_path):
    r = run_tiny(tmp_path, {TF_PARITY_FILE: "def test_parity(): pass\n"}, "-n", "0")
    assert r.returncode == 0 and "TensorFlow parity" not in r.stdout
