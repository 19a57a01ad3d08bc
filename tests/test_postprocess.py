"""PCA + clip + uint8 quantisation on hand-computed vectors."""
import numpy as np
import pytest

from vggish_jax.models.vggish import postprocess as post


def test_quantize_hand_values():
    x = np.array([-3.0, -2.0, 0.0, 1.98, 2.0, 3.0, -1.0])
    # (clip(x) + 2) * 255 / 4: 0, 0, 127.5, 253.725, 255, 255, 63.75
    assert post.quantize(x).tolist() == [0, 0, 127, 253, 255, 255, 63]
    assert post.quantize(x, "round").tolist() == [0, 0, 128, 254, 255, 255, 64]
    assert post.quantize(x).dtype == np.uint8
    with pytest.raises(ValueError, match="rounding"):
        post.quantize(x, "floor")


def test_pca_applies_rows_after_centering():
    rng = np.random.default_rng(0)
    ev = np.linalg.qr(rng.standard_normal((128, 128)))[0]
    means = rng.standard_normal(128)
    x = rng.standard_normal((5, 128))
    got = post.pca(x, post.PCAParams(ev, means.reshape(128, 1)))
    for i in range(5):
        np.testing.assert_allclose(got[i], ev @ (x[i] - means), atol=1e-12)


def test_postprocess_with_permutation_pca():
    perm = np.roll(np.eye(128), 1, axis=0)  # output i = input i-1
    means = np.full(128, 0.5)
    x = np.zeros((1, 128))
    x[0, 0] = 2.5  # centred 2.0 -> lands at index 1 -> 255
    out = post.postprocess(x, post.PCAParams(perm, means))
    assert out[0, 1] == 255
    assert out[0, 2] == 95  # (-0.5 + 2) * 63.75 = 95.625 -> truncated


def test_bad_pca_params():
    with pytest.raises(ValueError, match="do not fit"):
        post.PCAParams(np.eye(128), np.zeros(64))
    with pytest.raises(ValueError, match="NaN"):
        post.PCAParams(np.full((128, 128), np.nan), np.zeros(128))
