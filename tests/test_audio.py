"""Decoding, downmixing, resampling, block streaming and bad-input errors."""
import numpy as np
import pytest
import soundfile as sf

from vggish_jax import audio
from conftest import tone_mix


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_formats_downmix_and_resample(audio_files, ext):
    x, sr = audio.load(audio_files[ext], target_sr=16000)
    assert sr == 16000 and x.dtype == np.float32 and x.ndim == 1
    # mp3 adds encoder delay/padding; the others are within a few samples of 3.2 s.
    assert abs(x.shape[0] - 3.2 * 16000) < (2000 if ext == "mp3" else 2)


def test_wav_roundtrip_is_the_channel_mean(audio_files):
    raw, sr = sf.read(audio_files["wav"], dtype="float32")
    x, sr2 = audio.load(audio_files["wav"])
    assert sr2 == sr == 44100
    np.testing.assert_allclose(x, raw.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("freq,gain", [(1000, 1.0), (6000, 1.0), (7900, 0.0)])
def test_resample_passband_and_stopband(freq, gain):
    sr = 44100
    x = np.sin(2 * np.pi * freq * np.arange(sr) / sr).astype(np.float32)
    y = audio.resample(x, sr, 16000)
    assert y.shape == (16000,)
    core = y[1000:-1000]  # away from the edge transients
    assert np.sqrt(2) * core.std() == pytest.approx(gain, abs=0.01)
    if gain:
        ty = np.arange(16000)[1000:-1000] / 16000
        np.testing.assert_allclose(core, np.sin(2 * np.pi * freq * ty), atol=0.01)


def test_resample_matches_resampy_kaiser_best_in_log_mel():
    resampy = pytest.importorskip("resampy", reason="oracle needs resampy (in the test extra)")
    from vggish_jax.models.vggish import frontend
    x = (0.3 * np.random.default_rng(0).standard_normal(3 * 44100)).astype(np.float32)
    ours = frontend.waveform_to_examples(audio.resample(x, 44100, 16000), 16000)
    ref = frontend.waveform_to_examples(resampy.resample(x, 44100, 16000, filter="kaiser_best"), 16000)
    assert np.abs(ours - ref).max() < 0.01


@pytest.mark.parametrize("sr", [44100, 48000, 22050, 11025, 8000, 96000])
@pytest.mark.parametrize("seconds", [0.0001, 0.31, 2.07])
def test_matmul_polyphase_resampler_equals_scipy_resample_poly(sr, seconds):
    """audio.resample (dense-matmul polyphase) vs scipy's upfirdn, same filter."""
    from scipy import signal
    x = np.random.default_rng(sr).standard_normal(max(1, int(sr * seconds))).astype(np.float32)
    up, down = audio._ratio(sr, 16000)
    want = signal.resample_poly(x, up, down, window=audio._lowpass(up, down))
    got = audio.resample(x, sr, 16000)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sr", [44100, 22050, 16000, 8000, 48000])
def test_stream_equals_whole_file(tmp_path, sr):
    path = tmp_path / f"x{sr}.wav"
    sf.write(path, tone_mix(5.3, sr, channels=2), sr, subtype="FLOAT")
    whole, _ = audio.load(path, 16000)
    blocks = list(audio.stream(path, 16000, block_seconds=0.7))
    assert len(blocks) > 5
    streamed = np.concatenate(blocks)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-5


@pytest.mark.parametrize("kind,message", [
    ("missing", "no such file"),
    ("empty", "empty"),
    ("corrupt", "cannot decode"),
    ("nan", "NaN"),
])
def test_bad_files_raise_one_clear_line(audio_files, kind, message):
    with pytest.raises(audio.AudioError) as err:
        audio.load(audio_files[kind])
    text = str(err.value)
    assert audio_files[kind] in text and message in text and "\n" not in text
