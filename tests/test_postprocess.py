"""PCA + clip + uint8 quantisation on hand-computed vectors, and against torchvggish's Postprocessor."""
import numpy as np
import pytest

from conftest import require
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


# ---- against torchvggish's own Postprocessor, with PCA outputs far past the [-2, 2] clip ----

def torchvggish_postprocess(embeddings: np.ndarray, pca: post.PCAParams) -> np.ndarray:
    """torchvggish 0.2's Postprocessor.postprocess (PCA, clamp to [-2, 2], round) on `pca`, in float64."""
    torch = require("torch", "torchvggish's postprocessor is the oracle")
    tv = require("torchvggish.torchvggish", "torchvggish's postprocessor is the oracle")
    proc = tv.Postprocessor.__new__(tv.Postprocessor)  # its __init__ downloads the published PCA file
    proc._pca_matrix = torch.as_tensor(pca.eigen_vectors)
    proc._pca_means = torch.as_tensor(pca.means.reshape(-1, 1))
    return proc.postprocess(torch.from_numpy(np.asarray(embeddings, np.float64))).numpy()


def wide_pca(seed: int = 0, scale: float = 3.0) -> post.PCAParams:
    """A scaled rotation: unit-variance inputs come out with std `scale`, most of them past +-2."""
    rng = np.random.default_rng(seed)
    return post.PCAParams(scale * np.linalg.qr(rng.standard_normal((128, 128)))[0], 0.2 * rng.standard_normal(128))


def test_postprocess_clips_as_torchvggish_does():
    pca = wide_pca()
    x = np.random.default_rng(1).standard_normal((40, 128))
    pcaed = post.pca(x, pca)
    assert (pcaed > 2).mean() > 0.2 and (pcaed < -2).mean() > 0.2  # the clip decides a large share
    want = torchvggish_postprocess(x, pca)
    np.testing.assert_array_equal(post.postprocess(x, pca, rounding="round"), want.astype(np.uint8))
    # TF's truncation: at most one step below torchvggish's rounding, and the clipped ends exactly
    trunc = post.postprocess(x, pca).astype(int)
    assert ((want - trunc >= 0) & (want - trunc <= 1)).all()
    assert (trunc[pcaed >= 2] == 255).all() and (trunc[pcaed <= -2] == 0).all()


def test_embed_postprocess_clips_as_torchvggish_does(small_weights_dir):
    """The public `embed(..., postprocess=True)` with PCA params that spread its rows past +-2: torchvggish's
    Postprocessor on the same model's raw rows, within TF's truncation step."""
    import vggish_jax
    from conftest import tone_mix

    model = vggish_jax.VGGish.from_pretrained(small_weights_dir)
    x = tone_mix(3.0, 16000)
    raw = vggish_jax.embed(x, 16000, model).values.astype(np.float64)
    spread = post.PCAParams(np.diag(3.0 / (raw.std(0) + 1e-6)), raw.mean(0))
    model.attach(spec=model.spec, pca=spread)
    got = vggish_jax.embed(x, 16000, model, postprocess=True).values.astype(int)
    pcaed = post.pca(raw, spread)
    assert (np.abs(pcaed) > 2).mean() > 0.2
    want = torchvggish_postprocess(raw, spread)
    assert ((want - got >= 0) & (want - got <= 1)).all()
    assert (got[pcaed > 2.01] == 255).all() and (got[pcaed < -2.01] == 0).all()
