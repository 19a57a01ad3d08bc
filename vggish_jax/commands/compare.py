"""`vggish-jax compare`: the classifier comparison table (vggish_jax/classify/compare.py)."""
from vggish_jax.classify.compare import add_arguments, run  # noqa: F401
