"""vggish-jax's benchmarks: repository code, not part of the installed package (run from the repo root).

    python -m benchmarks [--quick] [--sections ...]        throughput sections (throughput.py)
    python -m benchmarks --suite device [--dry-run]        the accelerator check (device.py)

common.py holds what they share (the timer, FLOPs per frame, machine facts); beam.py and fad.py are the
`beam` and `fad` sections. They import vggish_jax; vggish_jax never imports them (pyproject's import-linter).
"""
