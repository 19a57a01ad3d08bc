"""The default test run leaves out the slow tests (-m 'not slow'); its summary says how many and how to run them
(tests/conftest.py's hooks), also under xdist, where each worker deselects for itself. Shown on a tiny suite of
two slow tests and one fast one, run by pytest in a subprocess with the real conftest loaded as a plugin."""
import os
import subprocess
import sys

import pytest

from conftest import SLOW_COMMAND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = """import pytest

@pytest.mark.slow
def test_slow_one(): pass

@pytest.mark.slow
def test_slow_two(): pass

def test_fast(): pass
"""


def run_tiny(tmp_path, *args: str) -> str:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -m 'not slow'\nmarkers = slow: slow tests\n")
    (tmp_path / "test_tiny.py").write_text(TINY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", *args], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("workers", ["0", "2"])
def test_the_summary_counts_the_slow_tests_left_out_and_says_how_to_run_them(tmp_path, workers):
    out = run_tiny(tmp_path, "-n", workers)
    assert "1 passed" in out
    assert f"2 slow tests not run (deselected by -m 'not slow'); run them with: {SLOW_COMMAND}" in out


def test_a_run_of_the_slow_tests_has_nothing_to_add(tmp_path):
    out = run_tiny(tmp_path, "-n", "0", "-m", "slow")
    assert "2 passed" in out and "not run" not in out


def test_the_suggested_command_is_the_one_ci_runs():
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert SLOW_COMMAND in f.read()
