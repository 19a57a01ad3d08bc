"""Our NumPy frontend against Google's own: torchvggish 0.2 ships tensorflow/models' `mel_features.py` and
`vggish_input.py` (with resampy's kaiser_best resampling), used here unmodified as the oracle.

At 16 kHz the two must agree to float32 rounding. From other rates the remaining gap is the resampler's
(ours is scipy polyphase with a kaiser_best-like filter, theirs resampy); the bounds below are the measured
gap with some margin, so a regression in either the maths or the resampler fails here.
"""
import numpy as np
import pytest

from conftest import require
from vggish_jax.models.vggish import frontend

vggish_input = require("torchvggish.vggish_input", "the oracle is torchvggish 0.2's vggish_input")


def signals(sr: int, seconds: float = 3.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(sr)
    t = np.arange(int(seconds * sr)) / sr
    return {
        "noise": 0.1 * rng.standard_normal(t.size),
        "tones": 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3150.5 * t),
        # log chirp kept below 7 kHz: above that both resamplers are in their transition bands
        "chirp": 0.3 * np.sin(2 * np.pi * 60 * seconds / np.log(110) * (110 ** (t / seconds) - 1)),
        "stereo": np.stack([0.3 * np.sin(2 * np.pi * 1000 * t), 0.05 * rng.standard_normal(t.size)], axis=1),
    }


def reference(x: np.ndarray, sr: int) -> np.ndarray:
    return vggish_input.waveform_to_examples(x, sr, return_tensor=False)


@pytest.mark.parametrize("name", ["noise", "tones", "chirp", "stereo"])
def test_frontend_equals_googles_at_16k(name):
    x = signals(16000)[name].astype(np.float32).astype(np.float64)  # we take float32 audio: same input to both
    want, got = reference(x, 16000), frontend.waveform_to_examples(x, 16000)
    assert got.shape == want.shape == (3, 96, 64)
    assert np.ptp(want) > 5  # log-mel spans a real dynamic range
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # float32 output of a float64 computation


# Measured here over 44.1/48/22.05 kHz (3-s signals, max / mean |log-mel difference|): noise 0.0050 / 0.00024,
# tones 0.028 / 0.0019, chirp to 6.6 kHz 0.061 / 0.0012, stereo 0.0046 / 0.00024.
@pytest.mark.parametrize("sr", [44100, 48000, 22050])
def test_frontend_from_other_rates_within_the_resampler_gap(sr):
    for name, x in signals(sr).items():
        want, got = reference(x, sr), frontend.waveform_to_examples(x, sr)
        assert got.shape == want.shape, name
        gap = np.abs(got - want)
        assert gap.max() <= 0.1 and gap.mean() <= 0.005, (name, sr, gap.max(), gap.mean())
