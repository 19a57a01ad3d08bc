"""Published VGGish weights (torchvggish .pth, TF-slim checkpoint) -> a vggish-jax weights folder.
Entry point `core.convert`; `published` fetches the published files and reads both formats (torch / TensorFlow
imported only there), `verify` runs the published smoke checks.
"""
