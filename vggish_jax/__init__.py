"""vggish-jax: Google's VGGish audio embedding in JAX/Flax, and a genre pipeline built on it.

Public API (imported on first use, so `import vggish_jax.audio` in a decode worker stays free of jax):
    VGGish.from_pretrained(dir)    -> the Flax NNX model, its EmbeddingSpec (.spec) and PCA params (.pca) attached
    embed(waveform, sr, model)     -> Embeddings: values [n, 128], start_s [n] (row i covers start_s .. +0.975 s), spec
    load_pretrained(dir)           -> Embedder (the batch/file API: streaming, every device)
    embed_file(path, weights=dir)  -> [n, 128] embeddings
    embed_files(paths, weights=dir)-> ({path: [n, 128]}, {path: error})
    waveform_to_examples(x, sr)    -> [n, 96, 64] log-mel examples (NumPy reference frontend)
    EmbeddingSpec                  -> the record of how an embedding was made

Layout: models/<name>/ (modeling, params, frontend, pretrained weights), pipeline/ (embed, extract, store),
classify/ (features, heads, the comparison), datasets/ (FMA), train/ (fine-tuning), commands/ (the CLI).
"""
import importlib

_EXPORTS = {
    "VGGish": "vggish_jax.models.vggish.modeling",
    "embed": "vggish_jax.pipeline.embeddings",
    "Embeddings": "vggish_jax.pipeline.embeddings",
    "Embedder": "vggish_jax.pipeline.embed",
    "embed_file": "vggish_jax.pipeline.embed",
    "embed_files": "vggish_jax.pipeline.embed",
    "load_pretrained": "vggish_jax.pipeline.embed",
    "waveform_to_examples": "vggish_jax.models.vggish.frontend",
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
