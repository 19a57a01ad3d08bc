"""Backbones: VGGish (and MusiCNN)."""
from vggish_jax.models.vggish import VGGish

__all__ = ["VGGish"]
