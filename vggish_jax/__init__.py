"""vggish-jax: Google's VGGish audio embedding in JAX/Flax, and a genre pipeline built on it.

Public API (imported on first use, so `import vggish_jax.audio` in a decode worker stays free of jax):
    VGGish.from_pretrained(dir)          -> the Flax NNX model, its EmbeddingSpec (.spec) and PCA params (.pca)
    embed(waveform, sr, model)           -> Embeddings: values [n, 128], start_s [n] (row i covers start_s ..
                                            +0.975 s), spec
    embed_files(paths, model)            -> (path, Embeddings or Skip) per file, in input order
    extract(source, out, model, settings)-> a resumable store of a dataset's embeddings (ExtractSettings)
    compare(store, out, settings)        -> the classifier comparison of a store (CompareSettings)
    waveform_to_examples(x, sr)          -> [n, 96, 64] log-mel examples (NumPy reference frontend)
    Skip, EmbeddingSpec                  -> the record of an input left out, of how an embedding was made

Layout: models/<name>/ (modeling, params, frontend, pretrained weights), pipeline/ (embed, extract, store),
classify/ (features, heads, the comparison), datasets/ (FMA), train/ (fine-tuning), commands/ (the CLI).
"""
import importlib

_EXPORTS = {
    "VGGish": "vggish_jax.models.vggish.modeling",
    "embed": "vggish_jax.pipeline.embeddings",
    "Embeddings": "vggish_jax.pipeline.embeddings",
    "embed_files": "vggish_jax.pipeline.embeddings",
    "extract": "vggish_jax.pipeline.extract",
    "ExtractSettings": "vggish_jax.pipeline.extract",
    "compare": "vggish_jax.classify.compare",
    "CompareSettings": "vggish_jax.classify.compare",
    "waveform_to_examples": "vggish_jax.pipeline.waveform",
    "Skip": "vggish_jax.skips",
    "EmbeddingSpec": "vggish_jax.spec",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vggish_jax' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
