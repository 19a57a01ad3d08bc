"""Genre classification on embeddings: features (per-clip feature sets), heads (JAX MLP heads), compare (the table)."""
