"""Datasets. FMA: `from vggish_jax.datasets import fma` (imports tensorflow_datasets, never TensorFlow).

    b = fma.prepare("fma/small", data_dir=D, manual_dir=M)   # builds once (decodes every mp3), then reuses
    ds = b.as_data_source("train")                          # random access: ds[i] -> {'mel', 'label', 'track_id'}
    fma.label_names(b)                                      # ('Electronic', ..., 'Rock'): label i's genre
    fma.skip_report(b)                                      # [{'track_id', 'split', 'path', 'reason'}, ...]

fma_metadata parses tracks.csv / genres.csv without pandas; decode holds the worker-process decoding.
audioset reads AudioSet v1's released embeddings (TFRecords, no TensorFlow) with music-genre labels.
"""
