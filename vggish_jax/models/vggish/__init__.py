"""VGGish: modeling (the Flax NNX module, forward, from_pretrained), params (layout, the one validation, the
weights folder), hub (the safetensors folder of save_pretrained), frontend (NumPy oracle), frontend_jax (jitted),
postprocess (PCA + uint8), convert/ (published files -> a weights folder). Nothing is imported here, so the
NumPy frontend imports no jax or flax.
"""
