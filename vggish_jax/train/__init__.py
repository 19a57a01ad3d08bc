"""Fine-tuning VGGish + a genre head, data-parallel over a device mesh (see loop.train)."""
