"""VGGish for evaluation harnesses: the HEAR 2021 API (`load_model`, `get_timestamp_embeddings`,
`get_scene_embeddings`) and an X-ARES encoder (`VGGishEncoder`) over the JAX model; usage, timestamp rules and
the harness commands: docs/integrations.md. All sounds share each device batch (`embed_stream`); torch is
imported only when a torch module is made (`pip install "vggish-jax[hear]"`).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from vggish_jax.models.vggish import frontend, modeling
from vggish_jax.pipeline import waveform
from vggish_jax.pipeline.embed import Embedder

SAMPLE_RATE = frontend.DEFAULT.sample_rate
EMBEDDING_SIZE = modeling.EMBEDDING_SIZE
WINDOW_S = frontend.example_seconds()  # 0.975 s
DEFAULT_HOP_S = 0.05  # HEAR asks for <= 50 ms between timestamps


def _embedder(weights_dir, hop_s: float) -> Embedder:
    if not weights_dir:
        raise ValueError("vggish_jax.hear needs the weights folder written by `vggish-jax convert`: pass it as "
                         "load_model(path), hear-validator -m PATH or heareval's --model PATH")
    cfg = frontend.with_hop(hop_s, pad_last=hop_s <= WINDOW_S / 2)  # refuses a hop off the 10 ms grid
    return Embedder(modeling.VGGish.from_pretrained(os.fspath(weights_dir)), cfg=cfg)


def timestamp_embeddings(embedder: Embedder, audio) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [n, m, 128] float32, timestamps [n, m] float32 ms) of [n, samples] 16 kHz audio."""
    x = audio.detach().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio)
    if x.ndim != 2:
        raise ValueError(f"audio must be [n_sounds, n_samples] at {SAMPLE_RATE} Hz, got shape {tuple(x.shape)}")
    n, samples = x.shape
    cfg = embedder.cfg
    x = np.pad(x, ((0, 0), (0, max(0, cfg.example_samples - samples))))  # one window for a short sound
    checked = [waveform.to_16k(s, SAMPLE_RATE, name=f"audio[{i}]") for i, s in enumerate(x)]  # type, NaN/inf
    rows = dict(embedder.embed_stream(enumerate(checked)))  # every sound in the same device batches
    m = int(frontend.num_examples(x.shape[1], cfg))
    emb = np.stack([rows[i] for i in range(n)]) if n else np.zeros((0, m, EMBEDDING_SIZE), np.float32)
    centres = np.arange(m) * frontend.example_hop_seconds(cfg) + WINDOW_S / 2
    ts = 1000.0 * np.minimum(centres, max(samples, 1) / SAMPLE_RATE)
    return emb.astype(np.float32), np.broadcast_to(ts.astype(np.float32), (n, m)).copy()


@functools.lru_cache(maxsize=None)
def _classes():
    """The torch.nn.Module classes, made on first use so that importing this module needs no torch."""
    import torch

    class VGGishHEAR(torch.nn.Module):
        """The HEAR model: a thin torch module holding the JAX VGGish (it has no torch parameters)."""
        sample_rate = SAMPLE_RATE
        scene_embedding_size = timestamp_embedding_size = EMBEDDING_SIZE

        def __init__(self, weights_dir, hop_s: float = DEFAULT_HOP_S):
            super().__init__()
            self.embedder, self.hop_s = _embedder(weights_dir, hop_s), float(hop_s)

        def forward(self, audio):
            return get_timestamp_embeddings(audio, self)[0]

    class VGGishEncoder(VGGishHEAR):
        """An X-ARES encoder: forward(audio [B, T] 16 kHz) -> [B, T', 128], a frame every hop_size_in_ms."""
        output_dim, sampling_rate = EMBEDDING_SIZE, SAMPLE_RATE

        def __init__(self, weights_dir, hop_s: float = DEFAULT_HOP_S):
            super().__init__(weights_dir, hop_s)
            self.hop_size_in_ms = 1000.0 * float(hop_s)

    VGGishHEAR.__module__ = VGGishEncoder.__module__ = __name__
    return VGGishHEAR, VGGishEncoder


def _tensor(x: np.ndarray, like):
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.to(like.device) if hasattr(like, "device") and isinstance(like, torch.Tensor) else t


def __getattr__(name: str):
    if name == "VGGishEncoder":
        return _classes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_model(model_file_path: str = "", hop_s: float = DEFAULT_HOP_S):
    """HEAR: the model from a weights folder written by `vggish-jax convert`; timestamps every `hop_s` s."""
    return _classes()[0](model_file_path, hop_s)


def get_timestamp_embeddings(audio, model):
    """HEAR: (embeddings [n_sounds, n_timestamps, 128], timestamps [n_sounds, n_timestamps] in ms), torch."""
    emb, ts = timestamp_embeddings(model.embedder, audio)
    return _tensor(emb, audio), _tensor(ts, audio)


def get_scene_embeddings(audio, model):
    """HEAR: [n_sounds, 128], the mean of each sound's timestamp embeddings."""
    emb, _ = timestamp_embeddings(model.embedder, audio)
    return _tensor(emb.mean(axis=1), audio)
