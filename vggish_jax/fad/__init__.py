"""Fréchet Audio Distance (Kilgour et al., 2019) on VGGish embeddings: `vggish-jax fad REF GEN`.

    frechet.frechet_distance(mu1, cov1, mu2, cov2)  -> FrechetResult (float64, stable square root)
    stats.from_frames / stats.save / stats.load      -> frame-level Gaussian statistics with their EmbeddingSpec
    score.per_file_scores, score.fad_inf             -> per-file distances, FAD-infinity with a bootstrap CI
    evaluate(ref, gen, weights=...)                  -> the whole result as a JSON-ready dict
Conventions and their sources: vggish_jax/fad/compute.py.
"""
from vggish_jax.fad.compute import convention, evaluate
from vggish_jax.fad.frechet import FrechetResult, frechet_distance
from vggish_jax.fad.stats import Stats

__all__ = ["FrechetResult", "Stats", "convention", "evaluate", "frechet_distance"]
