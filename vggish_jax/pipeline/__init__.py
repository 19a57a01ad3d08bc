"""Batch pipelines: embedding files and whole datasets into shards."""
