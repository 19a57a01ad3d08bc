"""The TF route against real TensorFlow: a TF1 V1 single-file checkpoint + vggish_pca_params.npz, written by
TensorFlow with random values, converted by `vggish-jax convert --tf-checkpoint`, must embed and postprocess
as TensorFlow's own forward pass of the reference graph does.

The fixture comes from tests/tf_reference.py, run in a venv with TensorFlow (`.ci/run` makes one; this venv
stays TF-free). Without it this test skips; under CI (VGGISH_JAX_REQUIRE_TF_FIXTURE=1) a missing fixture fails.
"""
import os

import numpy as np
import pytest

from vggish_jax.pipeline.embed import load_pretrained
from vggish_jax.models.vggish import postprocess as post
from vggish_jax.models.vggish.convert import published

FIXTURE = os.environ.get("VGGISH_JAX_TF_FIXTURE")
REQUIRED = os.environ.get("VGGISH_JAX_REQUIRE_TF_FIXTURE") == "1"


@pytest.fixture(scope="module")
def fixture_dir():
    if FIXTURE and os.path.isfile(os.path.join(FIXTURE, "reference.npz")):
        return FIXTURE
    why = (f"no TF reference in VGGISH_JAX_TF_FIXTURE={FIXTURE!r}" if FIXTURE else "VGGISH_JAX_TF_FIXTURE is not set")
    msg = (f"{why}: run `python tests/tf_reference.py DIR` where TensorFlow is installed and set "
           f"VGGISH_JAX_TF_FIXTURE=DIR; .ci/run does both and runs them")
    if REQUIRED:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def reference(fixture_dir):
    with np.load(os.path.join(fixture_dir, "reference.npz")) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def embedder(fixture_dir):
    return load_pretrained(os.path.join(fixture_dir, "converted"), batch_size=8)


def test_fixture_is_a_v1_single_file_checkpoint(fixture_dir, embedder):
    ckpt = os.path.join(fixture_dir, "vggish_model.ckpt")
    assert os.path.isfile(ckpt) and not os.path.exists(ckpt + ".index")  # V2 would be .index + .data-*
    meta = embedder.metadata
    assert meta["source"] == "tensorflow" and meta["final_relu"] is False
    assert meta["hashes"]["vggish_model.ckpt"] == published.sha256(ckpt)


@pytest.mark.parametrize("final_relu", [False, True])
def test_embeddings_match_tensorflow(fixture_dir, reference, final_relu):
    emb = load_pretrained(os.path.join(fixture_dir, "converted"), final_relu=final_relu, batch_size=8)
    want = reference["embeddings"]  # TF's pre-activation output, as the current reference model
    if final_relu:
        want = np.maximum(want, 0)
    got = emb.embed_examples(reference["examples"])
    assert got.shape == want.shape == (5, 128) and np.abs(want).max() > 0.1 and (reference["embeddings"] < 0).any()
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel <= 1e-4, rel


def test_postprocess_matches_the_reference(fixture_dir, reference, embedder):
    # On TF's own embeddings the uint8 codes are identical; on ours (1e-6 away) a code can sit on a boundary.
    np.testing.assert_array_equal(embedder.postprocess(reference["embeddings"]), reference["postprocessed"])
    ours = embedder.postprocess(embedder.embed_examples(reference["examples"])).astype(int)
    assert np.abs(ours - reference["postprocessed"]).max() <= 1
    assert len(np.unique(reference["postprocessed"])) > 50


def test_pca_npz_layout(fixture_dir, embedder):
    pca = published.load_pca_npz(os.path.join(fixture_dir, "vggish_pca_params.npz"))
    with np.load(os.path.join(fixture_dir, "vggish_pca_params.npz")) as z:
        assert z["pca_means"].shape == (128, 1) and z["pca_eigen_vectors"].dtype == np.float64
        np.testing.assert_array_equal(pca.means, z["pca_means"][:, 0])
    assert isinstance(embedder.pca, post.PCAParams)
    np.testing.assert_allclose(embedder.pca.eigen_vectors, pca.eigen_vectors, rtol=1e-7)  # stored as float32
