"""`vggish-jax bench`: throughput benchmarks (vggish_jax/bench.py)."""
from vggish_jax.bench import add_arguments, run  # noqa: F401
