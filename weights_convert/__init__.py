"""Convert published VGGish weights (torchvggish .pth, TF-slim checkpoint) into vggish-jax weights directories.

Entry point: weights_convert.convert.convert(out, torch_weights=..., ...), or `vggish-jax convert`.
"""
