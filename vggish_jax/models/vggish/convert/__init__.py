"""Published VGGish weights (torchvggish .pth, TF-slim checkpoint) -> a vggish-jax weights folder.

core (convert: one entry point, the swap-in write, the --out lock), torchvggish and tf_slim (each format's
reader and name mapping), download (the published files, cached and hash-checked), verify (the published
smoke checks on a converted folder). Entry point: `core.convert(out, torch_weights=..., ...)` or
`vggish-jax convert`. torch and TensorFlow are imported only inside the functions that read their files.
"""
