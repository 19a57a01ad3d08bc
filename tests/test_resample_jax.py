"""Resampling on the device (one strided convolution) against scipy's polyphase resampler with the same filter."""
import numpy as np
import pytest
from scipy import signal

from vggish_jax import audio
from vggish_jax.pipeline import resample_jax


@pytest.mark.parametrize("sr", [44100, 48000, 22050])
def test_device_resample_equals_scipy_resample_poly(sr):
    x = np.random.default_rng(sr).standard_normal((2, int(sr * 1.3) + 7)).astype(np.float32)
    up, down = audio.ratio(sr, 16000)
    want = np.stack([signal.resample_poly(row, up, down, window=audio.lowpass(up, down)) for row in x])
    got = np.asarray(resample_jax.resample(x, sr))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)  # float32 sums of ~280 taps


def test_device_resample_refuses_rates_whose_matrix_is_too_large():
    with pytest.raises(ValueError, match="resample on the host"):
        resample_jax.resample(np.zeros((1, 100), np.float32), 16001)
