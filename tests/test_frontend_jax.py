"""The jitted JAX frontend against the NumPy oracle."""
import numpy as np
import pytest

from vggish_jax.models.vggish import frontend, frontend_jax
from conftest import tone_mix

TOL = 1e-4  # the bound, for the default precision
FLOAT32_TOL = 1e-3  # measured worst case ~3e-4 in quiet bands beside loud tones (see frontend_jax docstring)


def _signals(seconds=2.5):
    n = int(seconds * 16000)
    rng = np.random.default_rng(0)
    t = np.arange(n) / 16000
    return {
        "noise": (0.3 * rng.standard_normal(n)).astype(np.float32),
        "sines": (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3150 * t)).astype(np.float32),
        "chirp": tone_mix(seconds, 16000),
        "quiet": (1e-4 * rng.standard_normal(n)).astype(np.float32),
    }


@pytest.mark.parametrize("kind", ["noise", "sines", "chirp", "quiet"])
@pytest.mark.parametrize("precision,tol", [("auto", TOL), ("float64", 1e-5), ("float32", FLOAT32_TOL)])
def test_jax_matches_numpy(kind, precision, tol):
    x = _signals()[kind]
    got = frontend_jax.waveforms_to_examples(x[None], precision=precision)
    assert got.dtype == np.float32
    got = np.asarray(got)[0]
    want = frontend.waveform_to_examples(x, 16000)
    assert got.shape == want.shape == (2, 96, 64)
    assert np.abs(got - want).max() <= tol


def test_batch_of_unequal_lengths_padded_matches_each_clip():
    sig = _signals(3.5)
    clips = [sig["noise"][:16000], sig["chirp"], sig["sines"][:40000]]
    batch, valid = frontend_jax.pad_batch(clips)
    out = np.asarray(frontend_jax.waveforms_to_examples(batch))
    assert list(valid) == [1, 3, 2] and out.shape[:2] == (3, 3)
    for clip, row, k in zip(clips, out, valid):
        want = frontend.waveform_to_examples(clip, 16000)
        assert want.shape[0] == k
        assert np.abs(row[:k] - want).max() <= TOL


def test_log_mel_frames_match():
    x = _signals()["chirp"]
    np.testing.assert_allclose(np.asarray(frontend_jax.log_mel(x)), frontend.log_mel(x), atol=TOL)


def test_too_short_batch_raises():
    with pytest.raises(frontend.TooShortError, match="shorter than one example"):
        frontend_jax.waveforms_to_examples(np.zeros((2, 15000), np.float32))
