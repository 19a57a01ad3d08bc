"""`vggish-jax bench`: throughput benchmarks (experiments/bench.py)."""
from experiments.bench import add_arguments, run  # noqa: F401
