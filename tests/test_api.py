"""The model-level API: VGGish.from_pretrained + vggish_jax.embed, against Google's frontend (torchvggish 0.2's
vggish_input, unmodified) and an independent PyTorch forward pass of the same weights; timing against where
a sound really is; compilations shared between models; embed_file's per-directory cache."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import vggish_jax
from vggish_jax.models.vggish import frontend, modeling, params
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.pipeline import device, embed as embed_lib

torch = pytest.importorskip("torch", reason="the oracle needs torch (pip install -e '.[test]')")
vggish_input = pytest.importorskip("torchvggish.vggish_input", reason="the oracle is torchvggish 0.2 (pip install -e '.[test]')")
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
    embed_lib.load_pretrained(other).embed_waveform(x.mean(axis=1))
    assert device.embed_waveforms._cache_size() == before  # another model, another Embedder: no new compile
    assert not np.allclose(eb.values, vggish_jax.embed(x, 16000, a).values)  # and the weights are its own


def test_embed_file_loads_a_weights_directory_once(tmp_path, audio_files):
    d = params.save(tmp_path / "w", modeling.random(2, width_divisor=8))
    first = embed_lib.cached_embedder(d)
    a = embed_lib.embed_file(audio_files["wav"], weights=d)
    assert embed_lib.cached_embedder(d) is first
    params.save(d, modeling.random(3, width_divisor=8))  # converted again: loaded again
    assert embed_lib.cached_embedder(d) is not first
    assert not np.allclose(embed_lib.embed_file(audio_files["wav"], weights=d), a)


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
