"""VGGish for evaluation harnesses: the HEAR 2021 API and an X-ARES encoder, over the JAX model.

HEAR (`hear-validator vggish_jax.hear -m WEIGHTS`, `python -m heareval.embeddings.runner vggish_jax.hear
--model WEIGHTS --model-options '{"hop_s": 0.05}'`):
    model = load_model(weights_dir, hop_s=0.05)       # a thin torch.nn.Module holding the JAX VGGish
    emb, ts = get_timestamp_embeddings(audio, model)   # [n_sounds, n_windows, 128], [n_sounds, n_windows] ms
    scene = get_scene_embeddings(audio, model)         # [n_sounds, 128]: the mean over the windows
X-ARES: `VGGishEncoder(weights_dir, hop_s=0.05)`, a torch.nn.Module: forward(audio [B, T]) -> [B, T', 128].

Audio is [n_sounds, n_samples] at 16 kHz in [-1, 1] (torch or NumPy). All sounds go through the device path
at once (`device.Embedder.embed_stream`: bucketed segments of every sound share each device batch),
with 0.975-s windows every `hop_s` seconds (overlapping below 0.96). Timestamps are window centres:
(start_s + 0.975 / 2) * 1000 ms. The last partial window is kept (zero-padded, `pad_last`) while its centre
stays inside the audio (hop_s <= 0.4875 s); a sound shorter than one window is padded to one, so every sound
has a timestamp, which is clamped to the sound's end when the sound is shorter than half a window.

torch is imported only when a torch module is made (`load_model`, `VGGishEncoder`); install it with
`pip install "vggish-jax[hear]"`.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from vggish_jax.models.vggish import frontend, modeling
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


def _numpy(audio) -> np.ndarray:
    x = audio.detach().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio)
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"audio must be [n_sounds, n_samples] at {SAMPLE_RATE} Hz, got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError("audio holds NaN or infinite samples; clean or drop those sounds")
    return x


def timestamp_embeddings(embedder: Embedder, audio) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [n, m, 128] float32, timestamps [n, m] float32 ms) of [n, samples] 16 kHz audio."""
    x = _numpy(audio)
    n, samples = x.shape
    cfg = embedder.cfg
    if samples < cfg.example_samples:  # one window for a short sound, the rest zeros
        x = np.pad(x, ((0, 0), (0, cfg.example_samples - samples)))
    rows = dict(embedder.embed_stream(enumerate(x)))  # every sound in the same device batches
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
        scene_embedding_size = EMBEDDING_SIZE
        timestamp_embedding_size = EMBEDDING_SIZE

        def __init__(self, weights_dir, hop_s: float = DEFAULT_HOP_S):
            super().__init__()
            self.embedder, self.hop_s = _embedder(weights_dir, hop_s), float(hop_s)

        def forward(self, audio):
            return get_timestamp_embeddings(audio, self)[0]

    class VGGishEncoder(torch.nn.Module):
        """An X-ARES encoder: forward(audio [B, T] 16 kHz) -> [B, T', 128], a frame every hop_size_in_ms."""
        output_dim = EMBEDDING_SIZE
        sampling_rate = SAMPLE_RATE

        def __init__(self, weights_dir, hop_s: float = DEFAULT_HOP_S):
            super().__init__()
            self.embedder, self.hop_size_in_ms = _embedder(weights_dir, hop_s), 1000.0 * float(hop_s)

        def forward(self, audio):
            emb, _ = timestamp_embeddings(self.embedder, audio)
            return _tensor(emb, audio)

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
