"""vggish-jax: Google's VGGish audio embedding in JAX/Flax, and a genre pipeline built on it.

Public API:
    load_pretrained(dir)           -> Embedder (model + PCA params from a converted weights directory)
    embed_file(path, weights=dir)  -> [n, 128] embeddings
    embed_files(paths, weights=dir)-> ({path: [n, 128]}, {path: error})
    waveform_to_examples(x, sr)    -> [n, 96, 64] log-mel examples (NumPy reference frontend)
"""
from vggish_jax.embed import Embedder, embed_file, embed_files, load_pretrained
from vggish_jax.frontend import waveform_to_examples

__all__ = ["Embedder", "embed_file", "embed_files", "load_pretrained", "waveform_to_examples"]
__version__ = "0.1.0"
