"""MusiCNN in Flax against golden outputs of the ORIGINAL musicnn graph and librosa frontend.

Goldens (tests/data): the original MSD_musicnn TF1 graph from the musicnn 0.1.0 wheel, run under
tensorflow-cpu 2.21 on two 187x96 patches that librosa 0.11 computed with musicnn's settings (reflect padding,
as librosa 0.7 did) from a synthesised clip; see tests/data/musicnn_golden_make_input.py.
"""
import os

import jax
import numpy as np
import pytest

from vggish_jax.models.musicnn import frontend as mf
from vggish_jax.models.musicnn.modeling import MusiCNN, from_flat
from vggish_jax.predict import MUSICNN_WEIGHTS
from vggish_jax.models.musicnn import convert

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="module")
def model():
    with np.load(MUSICNN_WEIGHTS) as z:
        return from_flat({k: z[k] for k in z.files})


@pytest.fixture(scope="module")
def golden():
    with np.load(os.path.join(DATA, "musicnn_golden.npz")) as z:
        return {k: z[k] for k in z.files}


def test_parity_with_original_graph(model, golden):
    f = model.features(golden["input"])
    assert np.abs(np.asarray(jax.nn.sigmoid(f["logits"])) - golden["taggram"]).max() < 1e-5
    assert np.abs(np.asarray(f["logits"]) - golden["logits"]).max() < 1e-4
    assert np.abs(np.asarray(f["penultimate"]) - golden["penultimate"]).max() < 1e-4
    np.testing.assert_allclose(np.asarray(f["mean_pool"]), golden["mean_pool"], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(f["max_pool"]), golden["max_pool"], atol=1e-3, rtol=1e-4)


def test_frontend_matches_librosa_golden():
    with np.load(os.path.join(DATA, "musicnn_frontend_golden.npz")) as z:
        pcm, want = z["pcm"], z["logmel"]
    got = mf.log_mel(pcm.astype(np.float32) / 32767)
    assert got.shape == want.shape == (388, 96)
    d = np.abs(got - want)
    assert d.max() < 2e-3 and d.mean() < 2e-4  # float16 rounding of the mel power, as in musicnn
    assert mf.patches(got).shape == (2, 187, 96)


def test_slaney_filterbank_facts():
    fb = mf.mel_filterbank()
    assert fb.shape == (96, 257)
    assert mf.hz_to_mel_slaney(1000.0) == pytest.approx(15.0)
    assert mf.mel_to_hz_slaney(mf.hz_to_mel_slaney(4321.0)) == pytest.approx(4321.0)
    # Slaney normalisation: each triangle's area in Hz is 1 (peak height 2 / (upper - lower edge)).
    hz = np.linspace(0, 8000, 257)
    areas = (fb * (hz[1] - hz[0])).sum(axis=1)
    assert np.allclose(areas, 1.0, atol=0.08)  # discrete bins: the triangles only approximately


def test_loud_input_stays_finite():
    x = 0.9 * np.sin(2 * np.pi * 55 * np.arange(16000 * 4) / 16000)
    assert np.isfinite(mf.log_mel(x)).all()


def test_conversion_mapping_and_shapes(model):
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda a: a.shape, __import__("flax").nnx.to_pure_dict(__import__("flax").nnx.state(model)))
    variables = {}
    for ours, tf_name in convert.TF_ORDER:
        parts = convert.BN_PARTS if tf_name.startswith("batch") else {"kernel": "kernel", "bias": "bias"}
        for part, tf_part in parts.items():
            shape = state[ours][part]
            if ours.startswith("mid") and part == "kernel":
                shape = (shape[0], shape[1], 1, shape[2])
            variables[f"{tf_name}/{tf_part}"] = rng.standard_normal(shape).astype(np.float32)
    flat = convert.params_from_variables(variables)
    m = from_flat(flat)
    assert m(np.zeros((1, 187, 96), np.float32)).shape == (1, 50)
    np.testing.assert_array_equal(flat["mid1/kernel"], variables["conv2d_5/kernel"][:, :, 0, :])
    del variables["dense_1/bias"]
    with pytest.raises(KeyError, match="dense_1/bias"):
        convert.params_from_variables(variables)


def test_random_model_shapes():
    assert MusiCNN(rngs=__import__("flax").nnx.Rngs(0))(np.zeros((3, 187, 96), np.float32)).shape == (3, 50)
