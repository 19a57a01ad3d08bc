"""Published VGGish weights (torchvggish .pth, TF-slim checkpoint) -> a vggish-jax weights folder.
Entry point `core.convert`; torchvggish and tf_slim read each format (torch / TensorFlow imported only there),
download fetches the published files, verify runs the published smoke checks.
"""
