"""Published VGGish weights (torchvggish .pth, TF-slim checkpoint) -> a vggish-jax weights folder.
Entry point `core.convert`; `published` reads both formats (torch / TensorFlow imported only there), `download`
fetches the published files, `verify` runs the published smoke checks.
"""
