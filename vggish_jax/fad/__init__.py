"""Fréchet Audio Distance (Kilgour et al., 2019) on VGGish embeddings: `vggish-jax fad REF GEN`.

    frechet: frechet_distance(mu1, cov1, mu2, cov2) -> FrechetResult; from_frames / save / load -> Stats;
             per_file_scores, fad_inf (FAD-infinity with a bootstrap CI)
    evaluate(ref, gen, weights=...) -> the whole result as a JSON-ready dict (compute; fad_inf_png plots it)
Conventions and their sources: vggish_jax/fad/compute.py.
"""
from vggish_jax.fad.compute import convention, evaluate
from vggish_jax.fad.frechet import FrechetResult, Stats, frechet_distance

__all__ = ["FrechetResult", "Stats", "convention", "evaluate", "frechet_distance"]
