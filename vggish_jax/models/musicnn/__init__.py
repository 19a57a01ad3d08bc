"""MusiCNN (MSD_musicnn): modeling (Flax NNX module + weight loading) and frontend (its log-mel patches)."""
