"""MusiCNN's input representation in NumPy (no librosa), matching what the `musicnn` 0.1.0 models were fed.

Facts from musicnn's configuration/extractor (librosa defaults of its time): 16 kHz mono; STFT with a 512-point
periodic Hann window, hop 256, centred frames (reflect padding of 256 samples); power spectrum |X|^2;
96 mel bands on the Slaney scale over 0-8 kHz with Slaney area normalisation; cast to float16; then
log10(10000 x + 1). Patches of 187 frames (~3 s), non-overlapping by default.

One deliberate difference: musicnn evaluates 10000 x in float16, which overflows to inf for mel power above
6.55 (loud bass notes) and then gives NaN tags. We round the mel power to float16 as it does, but take the
log in float32. Librosa >= 0.10 pads centred frames with zeros; the models were trained with librosa 0.7,
which reflected, and so do we.
"""
from __future__ import annotations

import functools

import numpy as np

SR, N_FFT, HOP, N_MELS, PATCH_FRAMES = 16000, 512, 256, 96, 187


# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (a factor 6.4 per 27 mels).
_F_SP, _MIN_LOG_HZ, _LOGSTEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP


def hz_to_mel_slaney(hz):
    hz = np.asarray(hz, np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz_slaney(mel):
    mel = np.asarray(mel, np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


@functools.lru_cache(maxsize=4)
def mel_filterbank(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney-normalised triangles over 0..sr/2."""
    fft_hz = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(0.0), hz_to_mel_slaney(sr / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """16 kHz mono waveform -> [frames, 96] log-compressed mel spectrogram (float32)."""
    x = np.asarray(waveform, np.float64)
    pad = N_FFT // 2
    if x.shape[0] <= pad:
        raise ValueError(f"need more than {pad} samples for MusiCNN's reflect-padded STFT, got {x.shape[0]}")
    x = np.pad(x, pad, mode="reflect")
    return _log_mel_of_padded(x, 1 + (x.shape[0] - N_FFT) // HOP)


def _log_mel_of_padded(x: np.ndarray, n: int) -> np.ndarray:
    """[n, 96] log-mel of the first n frames of an already reflect-padded float64 signal."""
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(x[idx] * window, axis=-1)) ** 2
    mel = np.minimum(power @ mel_filterbank().T, 65504.0).astype(np.float16)  # the trained pipeline's rounding
    return np.log10(10000 * mel.astype(np.float32) + 1)


def num_patches(num_samples: int) -> int:
    """Full 187-frame patches of a signal of `num_samples` (centred frames: 1 + samples // HOP of them)."""
    frames = 1 + num_samples // HOP
    return 0 if frames < PATCH_FRAMES else 1 + (frames - PATCH_FRAMES) // PATCH_FRAMES


def stream_patches(blocks, chunk: int = 32):
    """Consecutive 16 kHz blocks -> [k <= chunk, 187, 96] patches, equal to `patches(log_mel(whole signal))`.

    Holds one block plus one patch of audio; the last patches wait for the end (reflect padding).
    """
    pad, span = N_FFT // 2, PATCH_FRAMES * HOP
    buf, start, done = np.zeros(0, np.float32), 0, 0  # start: index of buf[0] in the whole signal

    def padded(lo: int, hi: int, total: int | None) -> np.ndarray:
        # Samples lo..hi of the reflect-padded signal, gathered from the buffer.
        k = np.abs(np.arange(lo, hi) - pad)
        if total is not None:
            k = np.where(k >= total, 2 * (total - 1) - k, k)
        return buf[k - start].astype(np.float64)

    def compute(first: int, last: int, total: int | None) -> np.ndarray:
        seg = padded(first * span, (last * PATCH_FRAMES - 1) * HOP + N_FFT, total)
        return _log_mel_of_padded(seg, (last - first) * PATCH_FRAMES).reshape(last - first, PATCH_FRAMES, N_MELS)

    for block in blocks:
        buf = np.concatenate([buf, np.asarray(block, np.float32)])
        end = start + buf.shape[0]
        # Patch i is complete once its last frame's window (samples up to span * (i + 1)) is in.
        ready = end // span
        while done < ready:
            last = min(ready, done + chunk)
            yield compute(done, last, None)
            done = last
        keep = max(0, done * span - pad) if done else 0
        buf, start = buf[keep - start:], keep
    total = start + buf.shape[0]
    if total <= pad:
        return
    while done < num_patches(total):
        last = min(num_patches(total), done + chunk)
        yield compute(done, last, total)
        done = last


def patches(log_mel_frames: np.ndarray, hop: int = PATCH_FRAMES) -> np.ndarray:
    """[frames, 96] -> [n, 187, 96]: full patches only, every `hop` frames."""
    n = max(0, (log_mel_frames.shape[0] - PATCH_FRAMES) // hop + 1)
    return log_mel_frames[np.arange(PATCH_FRAMES)[None, :] + hop * np.arange(n)[:, None]]


def min_samples() -> int:
    """Samples of 16 kHz audio needed for one 187-frame patch (~2.99 s)."""
    return (PATCH_FRAMES - 1) * HOP
