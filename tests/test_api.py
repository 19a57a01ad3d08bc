"""The model-level API: VGGish.from_pretrained + vggish_jax.embed, against Google's frontend (torchvggish 0.2's
vggish_input, unmodified) and an independent PyTorch forward pass of the same weights; timing against where
a sound really is; compilations shared between models; the per-directory Embedder cache; the one waveform
input check (rates, layouts, integer samples, bad input) and embed_files."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import require
import vggish_jax
from vggish_jax.models.vggish import frontend, modeling, params
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.pipeline import device, embed as embed_lib, waveform as waveform_lib

torch = require("torch", "the oracle needs torch")
vggish_input = require("torchvggish.vggish_input", "the oracle is torchvggish 0.2")
from test_vggish_model import torch_forward  # noqa: E402  (VGGish written in PyTorch from the weight layout)


@pytest.fixture(scope="module")
def model(small_weights_dir):
    return vggish_jax.VGGish.from_pretrained(small_weights_dir)


def _stereo_16k(seconds=4.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    left = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    return np.stack([left, right], axis=1).astype(np.float32)


def test_embed_equals_googles_frontend_and_a_pytorch_forward(model, small_weights_dir):
    x = _stereo_16k()
    got = vggish_jax.embed(x, 16000, model)
    p, pca, meta = params.load(small_weights_dir)
    examples = vggish_input.waveform_to_examples(x.astype(np.float64), 16000, return_tensor=False)
    want = torch_forward(p, examples.astype(np.float32), final_relu=False)
    assert got.values.shape == want.shape == (4, 128) and got.values.dtype == np.float32
    # the float32 device frontend is within 1e-3 of float64 log-mel; through the model that stays < 1e-3
    np.testing.assert_allclose(got.values, want, atol=1e-3 * np.abs(want).max(), rtol=0)
    np.testing.assert_allclose(got.start_s, [0.0, 0.96, 1.92, 2.88])
    assert got.spec == model.spec.replace(frontend_precision="float32")
    assert got.spec.weights_sha256 == meta["weights_sha256"]
    # postprocess: PCA then TF's truncating quantiser, written out here from its definition
    q = vggish_jax.embed(x, 16000, model, postprocess=True)
    pcaed = (pca.eigen_vectors @ (want.astype(np.float64).T - pca.means[:, None])).T
    want_q = ((np.clip(pcaed, -2, 2) + 2) * (255 / 4)).astype(np.uint8)
    assert q.values.dtype == np.uint8 and q.spec.postprocess == "pca_uint8_truncate"
    assert np.abs(q.values.astype(int) - want_q.astype(int)).max() <= 1  # a rounding step at most


def test_start_s_locates_a_sound(model):
    """Silence with one 0.5-s tone at 3.5 s: exactly the rows whose window [start_s, start_s + 0.975 s]
    overlaps it differ from the silent rows."""
    sr = 16000
    x = np.zeros(10 * sr, np.float32)
    x[int(3.5 * sr): int(4.0 * sr)] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(int(0.5 * sr)) / sr)
    e = vggish_jax.embed(x, sr, model)
    silent = vggish_jax.embed(np.zeros(sr, np.float32), sr, model).values[0]
    differs = np.abs(e.values - silent).max(axis=1) > 1e-6
    window = frontend.example_seconds()
    overlaps = (e.start_s < 4.0) & (e.start_s + window > 3.5)
    assert overlaps.sum() == 2  # 2.88 .. 3.855 and 3.84 .. 4.815
    np.testing.assert_array_equal(differs, overlaps)


def test_any_rate_channels_and_array_type(model):
    x = _stereo_16k(3.0)
    a = vggish_jax.embed(x, 16000, model).values
    np.testing.assert_array_equal(vggish_jax.embed(jnp.asarray(x), 16000, model).values, a)  # a JAX array
    np.testing.assert_array_equal(vggish_jax.embed(x.mean(axis=1), 16000, model).values, a)  # channels averaged
    y = np.repeat(x, 3, axis=0)[:, 0]  # 48 kHz held samples: resampled to 16 kHz, then 3 rows as at 16 kHz
    assert vggish_jax.embed(y, 48000, model).values.shape == (3, 128)
    with pytest.raises(frontend.TooShortError, match="pad=True"):
        vggish_jax.embed(x[:8000], 16000, model)
    assert vggish_jax.embed(x[:8000], 16000, model, pad=True).values.shape == (1, 128)


def test_models_and_embedders_share_compilations(tmp_path, small_weights_dir):
    other = params.save(tmp_path / "w2", modeling.random(5, width_divisor=8))
    x = _stereo_16k(2.5)
    a = vggish_jax.VGGish.from_pretrained(small_weights_dir)
    vggish_jax.embed(x, 16000, a)
    before = device.embed_waveforms._cache_size()
    b = vggish_jax.VGGish.from_pretrained(other)
    eb = vggish_jax.embed(x, 16000, b)
    embed_lib.load_pretrained(other)._embed_16k(x.mean(axis=1))
    assert device.embed_waveforms._cache_size() == before  # another model, another Embedder: no new compile
    assert not np.allclose(eb.values, vggish_jax.embed(x, 16000, a).values)  # and the weights are its own


def test_embed_file_loads_a_weights_directory_once(tmp_path, audio_files):
    d = params.save(tmp_path / "w", modeling.random(2, width_divisor=8))
    first = embed_lib.cached_embedder(d)
    a = embed_lib.cached_embedder(d).embed_file(audio_files["wav"])
    assert embed_lib.cached_embedder(d) is first
    params.save(d, modeling.random(3, width_divisor=8))  # converted again: loaded again
    assert embed_lib.cached_embedder(d) is not first
    assert not np.allclose(embed_lib.cached_embedder(d).embed_file(audio_files["wav"]), a)


def test_width_divisor_is_recorded_and_checked(tmp_path):
    d = params.save(tmp_path / "w", modeling.random(0, width_divisor=4))
    meta_path = os.path.join(d, params.METADATA)
    meta = json.load(open(meta_path))
    assert meta["width_divisor"] == 4
    assert vggish_jax.VGGish.from_pretrained(d).conv4_2.out_features == 128
    meta["width_divisor"] = 8
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(WeightsError, match=r"tensor conv1/.* has shape \(16,\), expected \(8,\) .*metadata.json.*convert the weights again"):
        vggish_jax.VGGish.from_pretrained(d)


def _oracle_rows(model, mono, sample_rate):
    """The NumPy reference frontend (its own resampler and log-mel, float64) through the model's layers."""
    examples = frontend.waveform_to_examples(mono, sample_rate)
    return np.asarray(model(jnp.asarray(examples)))


@pytest.mark.parametrize("layout", ["samples_channels", "channels_samples"])
def test_ten_seconds_of_44k_stereo_equal_the_numpy_oracle(model, layout):
    rng = np.random.default_rng(3)
    t = np.arange(10 * 44100) / 44100
    x = np.stack([0.3 * np.sin(2 * np.pi * 523 * t) + 0.05 * rng.standard_normal(t.size),
                  0.3 * np.sin(2 * np.pi * (100 + 200 * t) * t)], axis=1).astype(np.float32)
    got = vggish_jax.embed(x if layout == "samples_channels" else x.T, 44100, model)
    want = _oracle_rows(model, x.mean(axis=1), 44100)
    assert got.values.shape == want.shape == (10, 128)
    np.testing.assert_allclose(got.values, want, rtol=0, atol=1e-4 * np.abs(want).max())
    np.testing.assert_allclose(got.start_s, 0.96 * np.arange(10), atol=1e-9)


def test_integer_samples_are_scaled_by_their_full_range(model):
    rng = np.random.default_rng(4)
    t = np.arange(2 * 16000) / 16000
    q16 = np.round(np.clip(0.5 * np.sin(2 * np.pi * 330 * t) + 0.1 * rng.standard_normal(t.size), -1, 1)
                   * 32767).astype(np.int16)
    as_float = vggish_jax.embed(q16.astype(np.float32) / 32768, 16000, model).values
    np.testing.assert_array_equal(vggish_jax.embed(q16, 16000, model).values, as_float)
    np.testing.assert_array_equal(vggish_jax.embed(q16.astype(np.int32) << 16, 16000, model).values, as_float)
    q8 = (128 + (q16.astype(np.int32) >> 8)).astype(np.uint8)  # 8-bit WAV: unsigned, centred on 128
    np.testing.assert_array_equal(vggish_jax.embed(q8, 16000, model).values,
                                  vggish_jax.embed((q8.astype(np.float32) - 128) / 128, 16000, model).values)


_ONE_SECOND = np.zeros(16000, np.float32)


@pytest.mark.parametrize("waveform, rate, says", [
    (_ONE_SECOND, True, r"sample_rate must be a number of Hz.*got bool True"),
    (_ONE_SECOND, "16000", r"sample_rate must be a number of Hz.*got str '16000'.*int\(rate\)"),
    (_ONE_SECOND, None, r"sample_rate must be a number of Hz.*got NoneType None"),
    (_ONE_SECOND, 44100.5, r"sample_rate 44100.5 is not a whole number of Hz"),
    (_ONE_SECOND, 44.1, r"sample_rate 44.1 Hz is below 1000 Hz; did you mean 44100 Hz\?"),
    (_ONE_SECOND, 16, r"did you mean 16000 Hz\?"),
    (_ONE_SECOND, 0, r"sample_rate must be a positive number of Hz, got 0"),
    (_ONE_SECOND, 10_000_000, r"above 768000 Hz"),
    (np.array([0.1, np.nan] * 16000, np.float32), 16000, r"16000 NaN/inf samples of 32000.*np.nan_to_num"),
    (np.array([0.1, np.inf] * 16000, np.float32), 16000, r"16000 NaN/inf samples of 32000; the audio is corrupt"),
    (np.zeros(0, np.float32), 16000, r"holds no samples; pass at least 0.975 s"),
    (np.zeros((2, 0), np.float32), 16000, r"holds no samples"),
    (np.zeros((2, 16000, 2), np.float32), 16000, r"shape \(2, 16000, 2\) is not audio"),
    (np.zeros((40, 40), np.float32), 16000, r"shape \(40, 40\) is not audio.*at most 16 channels"),
    (np.zeros(16000, np.complex64), 16000, r"samples of type complex64 are not audio"),
])
def test_bad_waveforms_are_refused_in_one_line(model, waveform, rate, says):
    with pytest.raises(waveform_lib.WaveformError, match=says) as e:
        vggish_jax.embed(waveform, rate, model)
    assert "\n" not in str(e.value)
    with pytest.raises(waveform_lib.WaveformError, match=says):  # the public NumPy frontend checks the same
        vggish_jax.waveform_to_examples(waveform, rate)


def test_rate_like_numbers_are_accepted(model):
    x = _stereo_16k(1.5)
    want = vggish_jax.embed(x, 16000, model).values
    for rate in (np.int64(16000), np.int32(16000), 16000.0, np.float64(16000.0), np.array(16000), jnp.int32(16000)):
        np.testing.assert_array_equal(vggish_jax.embed(x, rate, model).values, want)


def test_too_short_waveforms_are_refused_or_padded(model):
    short = _stereo_16k(0.5)
    with pytest.raises(frontend.TooShortError, match=r"0.500 s of audio is shorter than one VGGish example.*pad=True"):
        vggish_jax.embed(short, 16000, model)
    padded = np.concatenate([short.mean(axis=1), np.zeros(15600 - 8000, np.float32)])
    np.testing.assert_array_equal(vggish_jax.embed(short, 16000, model, pad=True).values,
                                  vggish_jax.embed(padded, 16000, model).values)


def test_embed_takes_a_vggish_module_only(model, small_weights_dir):
    with pytest.raises(TypeError, match=r"model must be a VGGish module .*got Embedder"):
        vggish_jax.embed(_stereo_16k(1.0), 16000, embed_lib.load_pretrained(small_weights_dir))


def test_embed_files_in_order_with_skips_and_the_oracle(model, audio_files, small_weights_dir):
    import soundfile as sf

    paths = [audio_files["wav"], audio_files["missing"], audio_files["short"], audio_files["mono22k"]]
    out = list(vggish_jax.embed_files(paths, model, workers=1))
    assert [p for p, _ in out] == paths
    wav, missing, short, mono = (e for _, e in out)
    assert isinstance(missing, vggish_jax.Skip) and missing.kind == "missing"
    assert audio_files["missing"] in missing.reason
    assert isinstance(short, vggish_jax.Skip) and short.kind == "too_short"
    p, _, _ = params.load(small_weights_dir)
    for e, path in ((wav, audio_files["wav"]), (mono, audio_files["mono22k"])):
        x, sr = sf.read(path, dtype="float64", always_2d=True)
        examples = vggish_input.waveform_to_examples(x.mean(axis=1), sr, return_tensor=False)
        want = torch_forward(p, examples.astype(np.float32), final_relu=False)
        assert isinstance(e, vggish_jax.Embeddings) and e.values.shape == want.shape
        np.testing.assert_allclose(e.values, want, atol=1e-3 * np.abs(want).max(), rtol=0)
        np.testing.assert_allclose(e.start_s, 0.96 * np.arange(want.shape[0]), atol=1e-9)
        assert e.spec == model.spec.replace(frontend_precision="float32")
    q = dict(vggish_jax.embed_files([audio_files["wav"]], model, postprocess=True, workers=0))[audio_files["wav"]]
    assert q.values.dtype == np.uint8 and q.spec.postprocess == "pca_uint8_truncate"


@pytest.mark.parametrize("one", ["one.wav", pytest.param("path", id="PathLike")])
def test_embed_files_refuses_a_single_path(model, tmp_path, one):
    path = tmp_path / "one.wav" if one == "path" else one
    with pytest.raises(TypeError, match=r"takes a list of files, got the single path .*one.wav.*pass \[path\]"):
        vggish_jax.embed_files(path, model)


def test_public_names():
    assert set(vggish_jax.__all__) == {"VGGish", "embed", "Embeddings", "embed_files", "extract", "ExtractSettings",
                                       "compare", "CompareSettings", "waveform_to_examples", "Skip", "EmbeddingSpec"}
    for name in ("load_pretrained", "Embedder", "embed_file"):
        assert not hasattr(vggish_jax, name)
