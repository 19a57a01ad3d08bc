"""VGGish log-mel frontend in pure NumPy: the reference oracle for the JAX frontend.

Same semantics as the TensorFlow reference (research/audioset/vggish): 16 kHz mono, 25 ms periodic-Hann
frames every 10 ms, |rfft| with 512 points, 64 HTK mel bands over 125-7500 Hz, log(mel + 0.01), then
examples of 96 frames every `example_hop_frames` (96: non-overlapping; `with_hop(hop_s)` sets another hop,
any multiple of the 10 ms frame hop). By default nothing is padded: trailing samples that do not fill a
frame, and trailing frames that do not fill an example, are dropped; `pad_last=True` keeps one more example,
the last partial one, computed on the audio zero-padded to its end.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os

import numpy as np

from vggish_jax import audio


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    sample_rate: int = 16000
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    num_mel_bins: int = 64
    lower_edge_hz: float = 125.0
    upper_edge_hz: float = 7500.0
    log_offset: float = 0.01
    example_frames: int = 96
    example_hop_frames: int = 96
    pad_last: bool = False  # keep the last partial example (zero-padded) instead of dropping it

    @property
    def window_length(self) -> int:
        return int(round(self.sample_rate * self.window_seconds))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_seconds))

    @property
    def fft_length(self) -> int:
        return 2 ** int(np.ceil(np.log2(self.window_length)))

    @property
    def example_samples(self) -> int:
        """Samples needed for one example (0.975 s at the defaults)."""
        return (self.example_frames - 1) * self.hop_length + self.window_length

    @property
    def example_hop_samples(self) -> int:
        return self.example_hop_frames * self.hop_length


DEFAULT = FrontendConfig()


class TooShortError(ValueError):
    """Raised when a waveform yields no complete example."""


def hertz_to_mel(hz):
    """HTK mel scale: 1127 ln(1 + f/700)."""
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def mel_matrix(cfg: FrontendConfig = DEFAULT) -> np.ndarray:
    """[fft_length // 2 + 1, num_mel_bins] triangular weights (unnormalised; the DC row is zero)."""
    num_bins = cfg.fft_length // 2 + 1
    bins_mel = hertz_to_mel(np.linspace(0.0, cfg.sample_rate / 2.0, num_bins))
    edges = np.linspace(hertz_to_mel(cfg.lower_edge_hz), hertz_to_mel(cfg.upper_edge_hz), cfg.num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # The DC bin maps to mel 0, below every band; the reference zeroes it explicitly.
    weights[0, :] = 0.0
    return weights


def num_frames(num_samples, cfg: FrontendConfig = DEFAULT):
    """Whole frames in `num_samples` samples (an int, or an array of them: NumPy or JAX, traceable)."""
    frames = (num_samples - cfg.window_length) // cfg.hop_length + 1
    return frames * (frames > 0)  # clamp at 0 without branching, so arrays and tracers work too


def num_examples(num_samples, cfg: FrontendConfig = DEFAULT):
    """Examples in `num_samples` samples (an int, or an array of them: NumPy or JAX, traceable): the one
    examples-per-length rule of the project. Framing is causal. Whole examples only, or with `cfg.pad_last`
    also the one that starts inside the audio and covers its last samples (ceil instead of floor); a clip
    shorter than one example is padded to one example before (`fit_to_examples`)."""
    if cfg.pad_last:  # in samples: every sample after the last whole example's end needs one more example
        ex = (num_samples - cfg.example_samples + cfg.example_hop_samples - 1) // cfg.example_hop_samples + 1
    else:
        ex = (num_frames(num_samples, cfg) - cfg.example_frames) // cfg.example_hop_frames + 1
    return ex * (ex > 0)


# The FMA clip and the paper's flattened vector: 30 s -> 31 examples (31 x 128 = 3968-d), from the one rule above.
CLIP_SECONDS = 30
CLIP_SAMPLES = CLIP_SECONDS * DEFAULT.sample_rate
EXAMPLES_PER_CLIP = int(num_examples(CLIP_SAMPLES))


def with_hop(hop_s: float = 0.96, pad_last: bool = False, cfg: FrontendConfig = DEFAULT) -> FrontendConfig:
    """`cfg` with examples every `hop_s` seconds (a positive multiple of the frame hop, 10 ms) and the
    last-partial-example policy `pad_last`; ValueError (one line) for another hop."""
    number = isinstance(hop_s, numbers.Real) and not isinstance(hop_s, bool) and math.isfinite(hop_s)
    frames = round(float(hop_s) / cfg.hop_seconds) if number else 0
    if frames < 1 or abs(frames * cfg.hop_seconds - float(hop_s)) > 1e-9:
        raise ValueError(f"hop_s must be a positive multiple of the {cfg.hop_seconds * 1000:g} ms frame hop "
                         f"(e.g. 0.96, 0.48 or 0.05), got {hop_s!r}")
    return dataclasses.replace(cfg, example_hop_frames=frames, pad_last=bool(pad_last))


def samples_for_examples(n_examples: int, cfg: FrontendConfig = DEFAULT) -> int:
    """The fewest samples that hold `n_examples` (>= 1) whole examples: the inverse of `num_examples`."""
    return (n_examples - 1) * cfg.example_hop_samples + cfg.example_samples


def config_of(recorded) -> FrontendConfig:
    """The FrontendConfig a spec's `frontend` pairs (or dict) record; fields it lacks keep their defaults."""
    names = {f.name for f in dataclasses.fields(FrontendConfig)}
    return dataclasses.replace(DEFAULT, **{k: v for k, v in dict(recorded or {}).items() if k in names})


def example_hop_seconds(cfg: FrontendConfig = DEFAULT) -> float:
    """Seconds between the starts of consecutive examples (0.96 s by default): row i starts at i * this."""
    return cfg.example_hop_samples / cfg.sample_rate


def example_seconds(cfg: FrontendConfig = DEFAULT) -> float:
    """Seconds one example covers (0.975 s: 96 hops of 10 ms reach 15 ms into the next example)."""
    return cfg.example_samples / cfg.sample_rate


def frame(x: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Non-padded frames along axis 0: [n_frames, length, ...]."""
    n = 0 if x.shape[0] < length else 1 + (x.shape[0] - length) // hop
    idx = np.arange(length)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def log_mel(waveform: np.ndarray, cfg: FrontendConfig = DEFAULT) -> np.ndarray:
    """[num_frames, num_mel_bins] float64 log-mel of a 16 kHz mono waveform."""
    frames = frame(np.asarray(waveform, dtype=np.float64), cfg.window_length, cfg.hop_length)
    spectrum = np.abs(np.fft.rfft(frames * periodic_hann(cfg.window_length), n=cfg.fft_length))
    return np.log(spectrum @ mel_matrix(cfg) + cfg.log_offset)


def waveform_to_examples(waveform: np.ndarray, sample_rate: int, *, pad: bool = False,
                         cfg: FrontendConfig = DEFAULT, name: str = "waveform") -> np.ndarray:
    """Waveform (any rate; [samples] or [samples, channels]; mixed to mono, resampled to 16 kHz) -> float32
    [n, 96, 64] log-mel examples per `cfg`. Under one example (0.975 s): TooShortError, or with `pad` one
    zero-padded example."""
    x = audio.to_mono(np.asarray(waveform, dtype=np.float32))
    audio.check_finite(x, name)
    if sample_rate != cfg.sample_rate:
        x = audio.resample(x, sample_rate, cfg.sample_rate)
    x = fit_to_examples(x, pad=pad or cfg.pad_last, cfg=cfg, name=name)
    x = np.pad(x, (0, max(0, samples_for_examples(num_examples(x.shape[0], cfg), cfg) - x.shape[0])))
    mel = log_mel(x, cfg)
    return frame(mel, cfg.example_frames, cfg.example_hop_frames).astype(np.float32)


def fit_to_examples(x: np.ndarray, *, pad: bool, cfg: FrontendConfig = DEFAULT, name: str = "waveform") -> np.ndarray:
    """Check a 16 kHz waveform holds at least one example; zero-pad it to one if `pad`."""
    if x.shape[0] >= cfg.example_samples:
        return x
    if not pad:
        raise TooShortError(
            f"{name}: {x.shape[0] / cfg.sample_rate:.3f} s of audio is shorter than one VGGish example "
            f"({cfg.example_samples / cfg.sample_rate:.3f} s); use a longer clip, or zero-pad it: embed --pad, pad = "
            f"true in extract's --config file, pad=True in Python")
    return np.pad(x, (0, cfg.example_samples - x.shape[0]))


def file_examples(path: str | os.PathLike, *, pad: bool = False, block_seconds: float = 60.0,
                  cfg: FrontendConfig = DEFAULT) -> np.ndarray:
    """[n, 96, 64] float32 log-mel examples of a file by the NumPy oracle frontend, decoded in blocks
    (exactly equal to decoding it whole). For stored-mel datasets and users who want log-mels on the host."""
    name = os.fspath(path)
    chunks, buf = [], np.zeros(0, np.float32)
    for block in audio.stream(path, cfg.sample_rate, block_seconds):
        buf = np.concatenate([buf, block])
        n = num_examples(buf.shape[0], cfg)
        if n:
            used = samples_for_examples(n, cfg)
            chunks.append(waveform_to_examples(buf[:used], cfg.sample_rate, cfg=cfg, name=name))
            buf = buf[n * cfg.example_hop_samples:]
    if not chunks:
        buf = fit_to_examples(buf, pad=pad, cfg=cfg, name=name)
        chunks.append(waveform_to_examples(buf, cfg.sample_rate, cfg=cfg, name=name))
    return np.concatenate(chunks)
