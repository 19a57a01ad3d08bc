"""Backbones, one folder each: vggish/ (the embedding model) and musicnn/ (the offline genre tagger)."""
