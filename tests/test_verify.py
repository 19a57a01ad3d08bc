"""`convert --verify`: the published smoke checks, their pass rule, and their numbers against an oracle.

Oracle for the numbers: Google's frontend (torchvggish 0.2's vggish_input, with resampy) and torchvggish's
VGG module holding the same weights; the pass rule is numpy.testing.assert_allclose's.
"""
import os

import numpy as np
import pytest

from conftest import require
from vggish_jax import cli
from vggish_jax.models.vggish import modeling, params as params_lib
from vggish_jax.models.vggish.convert import verify

torch = require("torch", "the oracle needs torch")
tv = require("torchvggish", "the oracle is torchvggish 0.2")
from torchvggish import torchvggish as tvm, vggish_input  # noqa: E402
import published_formats  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("verify") / "w"
    pca = published_formats.random_pca(5)
    from vggish_jax.models.vggish.postprocess import PCAParams
    params_lib.save(d, modeling.random(3), pca=PCAParams(pca["pca_eigen_vectors"], pca["pca_means"]))
    return str(d), pca


@pytest.fixture(scope="module")
def results(weights):
    return verify.run(weights[0])


@pytest.fixture(scope="module")
def oracle_model(weights):
    """torchvggish's own VGG module holding the same weights."""
    params, _, _ = params_lib.load(weights[0])
    model = tvm.VGG(tvm.make_layers(), postprocess=False).eval()
    convs = ["conv1", "conv2", "conv3_1", "conv3_2", "conv4_1", "conv4_2"]
    conv_modules = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    fc_modules = [m for m in model.embeddings if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for name, m in zip(convs, conv_modules):
            m.weight.copy_(torch.from_numpy(params[name]["kernel"].transpose(3, 2, 0, 1)))
            m.bias.copy_(torch.from_numpy(params[name]["bias"]))
        for name, m in zip(["fc1_1", "fc1_2", "fc2"], fc_modules):
            m.weight.copy_(torch.from_numpy(params[name]["kernel"].T))
            m.bias.copy_(torch.from_numpy(params[name]["bias"]))
    return model


def oracle_stats(model, pca, check):
    """Mean/std of embeddings (and TF-quantised PCA) via Google's frontend and torchvggish's VGG."""
    with torch.no_grad():
        x = vggish_input.waveform_to_examples(verify.sine(check.sample_rate, check.time_axis), check.sample_rate)
        f = model.features(x)
        f = torch.transpose(torch.transpose(f, 1, 3), 1, 2).contiguous().view(f.size(0), -1)
        emb = model.embeddings(f) if check.final_relu else model.embeddings[:5](f)
    emb = emb.numpy().astype(np.float64)
    pcaed = (pca["pca_eigen_vectors"] @ (emb.T - pca["pca_means"].reshape(-1, 1))).T
    q = ((np.clip(pcaed, -2, 2) + 2) * (255 / 4)).astype(np.uint8)  # TF's postprocessor truncates
    return (emb.mean(), emb.std()), (q.mean(), q.std())


@pytest.mark.slow
def test_numbers_match_googles_pipeline(weights, results, oracle_model):
    assert [r.check for r in results] == list(verify.CHECKS)
    for r in results:
        (m, s), (pm, ps) = oracle_stats(oracle_model, weights[1], r.check)
        # at 16 kHz only float rounding differs; at 44.1 kHz also our resampler vs resampy
        tol = 1e-4 if r.check.sample_rate == 16000 else 2e-2
        np.testing.assert_allclose(r.embedding, (m, s), rtol=tol, atol=tol * s, err_msg=r.check.name)
        if r.check.postprocessed is not None:
            np.testing.assert_allclose(r.postprocessed, (pm, ps), rtol=tol, atol=0.5, err_msg=r.check.name)


@pytest.mark.parametrize("got", [(0.0007, 0.35), (0.00072, 0.343), (0.000657, 0.30), (-0.000657, 0.343),
                                 (0.000591, 0.3773), (0.0, 0.343)])
def test_pass_rule_is_assert_allclose(got):
    want, rtol = (0.000657, 0.343), 0.1
    try:
        np.testing.assert_allclose(got, want, rtol=rtol)
        expected = True
    except AssertionError:
        expected = False
    check = verify.CHECKS[0]
    assert verify.Result(check, got, None).passed is expected


@pytest.mark.slow
def test_random_weights_fail_with_numbers_and_scaled_weights_pass(weights, results, tmp_path, capsys):
    d, _ = weights
    assert cli.main(["convert", "--out", d, "--verify"]) == 1
    out = capsys.readouterr().out
    assert out.count("[FAIL]") == 3 and "verify: FAIL (0/3 checks passed)" in out
    assert "expected 0.000657 / 0.343" in out and "09093db7da85c9808bbbce7bc6e26fd1a049e9af" in out
    assert "expected 126 / 89.3" in out and "expected -0.0333 / 0.38" in out

    # fc2 is affine in its parameters: rescale it so the 16-kHz check's embedding stats hit the published ones
    params, _, _ = params_lib.load(d)
    (m, s), (m_want, s_want) = results[0].embedding, verify.CHECKS[0].embedding
    a = s_want / s
    params["fc2"]["kernel"] = params["fc2"]["kernel"] * a
    params["fc2"]["bias"] = params["fc2"]["bias"] * a + (m_want - a * m)
    params_lib.save(tmp_path / "w", params)  # no PCA: the postprocessed stats are not checked
    [r] = verify.run(tmp_path / "w", checks=verify.CHECKS[:1])
    assert r.passed and r.postprocessed is None
    np.testing.assert_allclose(r.embedding, (m_want, s_want), rtol=1e-3)
    assert "[pass]" in r.describe() and "not checked (these weights have no PCA params)" in r.describe()


@pytest.mark.slow
def test_download_converts_then_verifies(tmp_path, monkeypatch, capsys):
    """`convert --download torch` fetches (here from file:// URLs), checks the hash prefix, converts, verifies."""
    from vggish_jax.models.vggish.convert import published
    torch.manual_seed(4)
    published_formats.save(tvm.VGG(tvm.make_layers(), postprocess=False).state_dict(), tmp_path / "w.pth")
    published_formats.save(published_formats.random_pca(6, (128, 1)), tmp_path / "pca.pth")
    for key, src in (("torch_weights", tmp_path / "w.pth"), ("torch_pca", tmp_path / "pca.pth")):
        name = published.FILES[key].name
        digest = published.sha256(str(src))
        monkeypatch.setitem(published.FILES, key, published.Published(name, src.as_uri(), digest[:8]))
    monkeypatch.setenv(published.CACHE_ENV, str(tmp_path / "cache"))
    assert cli.main(["convert", "--download", "torch", "--out", str(tmp_path / "out")]) == 1  # random: fails
    out = capsys.readouterr().out
    assert "source=torchvggish, final_relu=True, pca=yes" in out
    assert "verify: FAIL (0/3 checks passed)" in out and "postprocessed mean" in out
    assert sorted(os.listdir(tmp_path / "cache")) == ["vggish-10086976.pth", "vggish_pca_params-970ea276.pth"]
