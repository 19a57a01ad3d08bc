"""Audio files -> embeddings: host decoding, fixed-shape batching, and the one jitted device function."""
