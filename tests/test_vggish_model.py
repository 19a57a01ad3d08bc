"""Flax VGGish: shapes, parameter count, and layout parity against an independent PyTorch forward pass."""
import numpy as np
import pytest
import jax.numpy as jnp
from flax import nnx

from vggish_jax.models.vggish import modeling, params as params_lib
from vggish_jax.models.vggish.modeling import VGGish, num_params

torch = pytest.importorskip("torch", reason="the parity oracle needs torch (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def weights():
    return modeling.random(1)


def torch_forward(p: dict, x: np.ndarray, final_relu: bool) -> np.ndarray:
    """VGGish in PyTorch from the HWIO/[in,out] layout: NCHW convs, then an explicit H, W, C flatten."""
    tensor = lambda a: torch.tensor(np.asarray(a, np.float32))
    t = tensor(x[:, None])  # [B, 1, 96, 64]
    for name in ("conv1", "conv2", "conv3_1", "conv3_2", "conv4_1", "conv4_2"):
        w = tensor(np.transpose(p[name]["kernel"], (3, 2, 0, 1)))
        t = torch.relu(torch.nn.functional.conv2d(t, w, tensor(p[name]["bias"]), padding=1))
        if name in ("conv1", "conv2", "conv3_2", "conv4_2"):
            t = torch.nn.functional.max_pool2d(t, 2, 2)
    t = t.permute(0, 2, 3, 1).reshape(t.shape[0], -1)
    for name in ("fc1_1", "fc1_2", "fc2"):
        t = t @ tensor(p[name]["kernel"]) + tensor(p[name]["bias"])
        if name != "fc2" or final_relu:
            t = torch.relu(t)
    return t.detach().numpy()


def test_param_count_and_shapes(weights):
    model = modeling.build(weights)
    assert num_params(model) == 72_141_184
    assert weights["conv1"]["kernel"].shape == (3, 3, 1, 64)
    assert weights["fc1_1"]["kernel"].shape == (6 * 4 * 512, 4096)
    assert model(jnp.zeros((3, 96, 64))).shape == (3, 128)
    assert model.features(jnp.zeros((2, 96, 64, 1))).shape == (2, 12288)


@pytest.mark.parametrize("final_relu", [False, True])
def test_matches_torch_forward(weights, final_relu):
    x = np.random.default_rng(0).standard_normal((2, 96, 64)).astype(np.float32)
    got = np.asarray(modeling.build(weights, final_relu=final_relu)(x))
    want = torch_forward(weights, x, final_relu)
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    if final_relu:
        assert np.all(got >= 0)


def test_flatten_is_h_w_c_order(weights):
    """fc1_1 reads one known position: only an H, W, C flatten maps row h*4*512 + w*512 + c to it."""
    p = {k: dict(v) for k, v in weights.items()}
    h, w, c = 4, 1, 300
    k = np.zeros_like(p["fc1_1"]["kernel"])
    k[h * 4 * 512 + w * 512 + c, 0] = 1.0
    p["fc1_1"] = {"kernel": k, "bias": np.zeros(4096, np.float32)}
    model = modeling.build(p)
    x = np.random.default_rng(1).standard_normal((1, 96, 64)).astype(np.float32)
    feats = np.asarray(model.features(x)).reshape(6, 4, 512)
    hidden = np.asarray(nnx.relu(model.fc1_1(model.features(x))))
    assert hidden[0, 0] == pytest.approx(max(feats[h, w, c], 0.0), rel=1e-6)
    assert feats[h, w, c] != pytest.approx(feats.transpose(2, 0, 1).reshape(-1)[h * 4 * 512 + w * 512 + c])


def test_bfloat16_compute_is_close(weights):
    x = np.random.default_rng(2).standard_normal((4, 96, 64)).astype(np.float32)
    f32 = np.asarray(modeling.build(weights)(x))
    bf16 = modeling.build(weights, dtype=jnp.bfloat16)(x)
    assert bf16.dtype == jnp.bfloat16
    err = np.abs(np.asarray(bf16, np.float32) - f32).max() / np.abs(f32).max()
    assert err < 0.05


def test_bad_params_name_the_tensor(weights):
    bad = {k: dict(v) for k, v in weights.items()}
    bad["conv3_2"]["kernel"] = bad["conv3_2"]["kernel"][..., :100]
    with pytest.raises(params_lib.WeightsError, match=r"conv3_2/kernel has shape \(3, 3, 256, 100\)"):
        modeling.build(bad)
    missing = {k: v for k, v in weights.items() if k != "fc2"}
    with pytest.raises(params_lib.WeightsError, match="missing tensors.*fc2/bias"):
        modeling.build(missing)
    nan = {k: dict(v) for k, v in weights.items()}
    nan["fc2"]["bias"] = np.full(128, np.nan, np.float32)
    with pytest.raises(params_lib.WeightsError, match="fc2/bias contains NaN"):
        modeling.build(nan)


def test_random_init_differs_by_seed_and_is_usable():
    a, b = modeling.random(0), modeling.random(1)
    assert not np.allclose(a["conv1"]["kernel"], b["conv1"]["kernel"])
    # Usable for smoke runs and benchmarks: distinct inputs give distinct, finite, non-degenerate embeddings.
    x = np.random.default_rng(3).standard_normal((4, 96, 64)).astype(np.float32)
    e = np.asarray(modeling.build(a)(x))
    assert np.isfinite(e).all() and e.std() > 0
    assert np.abs(e[0] - e[1]).max() > 1e-3 * np.abs(e).max()


@pytest.mark.parametrize("width_divisor", [1, 8])
def test_layout_written_out_matches_the_module(width_divisor):
    """params.param_shapes (the layout written out, used to check every weight file) is what the NNX module holds."""
    from vggish_jax.models import loading

    held = loading.shapes(lambda: VGGish(width_divisor=width_divisor), nnx.Param)
    assert params_lib.param_shapes(width_divisor) == held
