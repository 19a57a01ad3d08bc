"""MusiCNN (MSD_musicnn): modeling (Flax NNX module + weight loading), frontend (its log-mel patches), tagger,
and convert (the musicnn wheel's TF1 checkpoint -> assets/msd_musicnn.npz; needs TensorFlow, inside functions)."""
