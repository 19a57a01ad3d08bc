"""The NumPy frontend against hand-checkable facts and a loop-based oracle written from the formulas."""
import math

import numpy as np
import pytest

from vggish_jax.models.vggish import frontend
from conftest import tone_mix


def _mel(hz):
    return 1127.0 * math.log(1.0 + hz / 700.0)


def test_mel_matrix_matches_scalar_formula():
    cfg = frontend.DEFAULT
    w = frontend.mel_matrix()
    assert w.shape == (257, 64)
    lo, hi = _mel(125.0), _mel(7500.0)
    step = (hi - lo) / 65
    for band in (0, 1, 31, 63):
        left, center, right = lo + band * step, lo + (band + 1) * step, lo + (band + 2) * step
        for b in range(257):
            m = _mel(b * 8000.0 / 256)
            expected = 0.0 if b == 0 else max(0.0, min((m - left) / (center - left), (right - m) / (right - center)))
            assert w[b, band] == pytest.approx(expected, abs=1e-12)
    assert np.all(w[0] == 0)
    assert cfg.fft_length == 512 and cfg.window_length == 400 and cfg.hop_length == 160


def test_mel_bands_cover_125_to_7500_hz():
    w = frontend.mel_matrix()
    hz = np.linspace(0, 8000, 257)
    active = hz[w.sum(axis=1) > 0]
    assert active.min() > 125 and active.max() < 7500
    assert np.all(w.max(axis=0) <= 1.0) and np.all(w.max(axis=0) > 0.3)


def test_periodic_hann():
    w = frontend.periodic_hann(400)
    assert w[0] == 0 and w[200] == pytest.approx(1.0)
    assert w[100] == pytest.approx(0.5) and w[300] == pytest.approx(0.5)


@pytest.mark.parametrize("seconds,expected", [(30.0, 31), (0.975, 1), (1.935, 2), (1.934, 1), (10.0, 10)])
def test_example_counts(seconds, expected):
    n = int(round(seconds * 16000))
    assert frontend.num_examples(n) == expected
    assert frontend.waveform_to_examples(np.zeros(n, np.float32), 16000).shape == (expected, 96, 64)


def test_too_short_raises_or_pads():
    x = np.ones(8000, np.float32)
    with pytest.raises(frontend.TooShortError, match=r"0\.975 s.*pad"):
        frontend.waveform_to_examples(x, 16000, name="clip.wav")
    padded = frontend.waveform_to_examples(x, 16000, pad=True)
    assert padded.shape == (1, 96, 64)
    # The padding is silence: the last frames see only zeros -> log(0.01).
    assert padded[0, -1] == pytest.approx(np.full(64, np.log(0.01)), abs=1e-6)


def test_log_mel_matches_explicit_dft_of_one_frame():
    x = tone_mix(0.2, 16000, seed=3).astype(np.float64)
    start = 7 * 160
    seg = x[start:start + 400] * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400))
    k = np.arange(257)[:, None]
    n = np.arange(400)[None, :]
    mag = np.abs((seg[None, :] * np.exp(-2j * np.pi * k * n / 512)).sum(axis=1))
    expected = np.log(mag @ frontend.mel_matrix() + 0.01)
    np.testing.assert_allclose(frontend.log_mel(x)[7], expected, atol=1e-9)


def test_sine_peaks_in_the_band_nearest_its_frequency():
    sr, f = 16000, 1000.0
    x = np.sin(2 * np.pi * f * np.arange(sr * 2) / sr).astype(np.float32)
    ex = frontend.waveform_to_examples(x, sr)
    edges = np.linspace(_mel(125), _mel(7500), 66)
    centers_hz = 700 * (np.exp(edges[1:-1] / 1127) - 1)
    assert np.argmax(ex[0].mean(axis=0)) == np.argmin(np.abs(centers_hz - f))


def test_stereo_is_averaged_and_resampled():
    st = tone_mix(2.0, 32000, channels=2)
    a = frontend.waveform_to_examples(st, 32000)
    from vggish_jax import audio
    b = frontend.waveform_to_examples(audio.resample(st.mean(axis=1), 32000, 16000), 16000)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_nan_input_is_rejected():
    x = np.zeros(20000, np.float32)
    x[10] = np.nan
    with pytest.raises(ValueError, match="clip.wav: 1 NaN"):
        frontend.waveform_to_examples(x, 16000, name="clip.wav")
