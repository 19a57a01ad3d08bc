"""`vggish-jax compare`: the classifier comparison table (experiments/compare_classifiers.py)."""
from experiments.compare_classifiers import add_arguments, run  # noqa: F401
