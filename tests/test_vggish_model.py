"""Flax VGGish: shapes, parameter count, layout parity against an independent PyTorch forward pass, and the
safetensors model folder (save_pretrained / from_pretrained)."""
import json
import os

import numpy as np
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from conftest import require

from vggish_jax.models.vggish import modeling, params as params_lib
from vggish_jax.models.vggish.modeling import VGGish

torch = require("torch", "the parity oracle needs torch")


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


def num_params(model: nnx.Module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


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


@pytest.fixture(scope="module")
def hub_round_trip(tmp_path_factory):
    """A converted (orbax) weights folder with PCA, and the same model saved by save_pretrained."""
    from vggish_jax.models.vggish import modeling, postprocess

    d = tmp_path_factory.mktemp("hub")
    rng = np.random.default_rng(5)
    pca = postprocess.PCAParams(np.linalg.qr(rng.standard_normal((128, 128)))[0], rng.standard_normal(128))
    orbax_dir = params_lib.save(d / "orbax", modeling.random(6, width_divisor=8), pca=pca,
                                metadata={"source": "random", "seed": 6, "final_relu": True})
    model = VGGish.from_pretrained(orbax_dir)
    return orbax_dir, model, model.save_pretrained(d / "hub")


def test_save_pretrained_round_trip_is_exact(hub_round_trip):
    require("safetensors", "the saved file's format")
    from vggish_jax.models.vggish import modeling

    orbax_dir, model, hub_dir = hub_round_trip
    assert sorted(os.listdir(hub_dir)) == ["README.md", "config.json", "model.safetensors"]
    again = VGGish.from_pretrained(hub_dir)
    want, got = params_lib.load(orbax_dir)[0], modeling.to_dict(again)
    assert max(float(np.abs(got[l][k] - want[l][k]).max()) for l in want for k in want[l]) == 0.0
    np.testing.assert_array_equal(again.pca.eigen_vectors, model.pca.eigen_vectors)
    np.testing.assert_array_equal(again.pca.means, model.pca.means)
    assert again.spec == model.spec and again.final_relu is True and again.width_divisor == 8
    x = np.random.default_rng(7).standard_normal((2, 96, 64)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(model(x)))
    config = json.load(open(os.path.join(hub_dir, "config.json")))
    assert config["source"] == "random" and config["spec"] == model.spec.to_dict()
    assert config["weights_sha256"] in open(os.path.join(hub_dir, "README.md")).read()


def test_saved_file_is_plain_safetensors(hub_round_trip):
    """Another reader (safetensors' own NumPy loader) opens it: float32 tensors in the documented names."""
    st = require("safetensors.numpy", "the saved file's format")
    orbax_dir, _, hub_dir = hub_round_trip
    tensors = st.load_file(os.path.join(hub_dir, "model.safetensors"))
    want = params_lib.load(orbax_dir)[0]
    assert set(tensors) == {f"{l}.{k}" for l in want for k in want[l]} | {"pca.eigen_vectors", "pca.means"}
    np.testing.assert_array_equal(tensors["conv3_2.kernel"], want["conv3_2"]["kernel"])
    assert all(t.dtype == np.float32 for t in tensors.values())


def test_tampered_or_wrong_shaped_safetensors_is_one_line(hub_round_trip, tmp_path):
    st = require("safetensors.numpy", "the saved file's format")
    import shutil

    _, _, hub_dir = hub_round_trip
    path = tmp_path / "h" / "model.safetensors"
    shutil.copytree(hub_dir, tmp_path / "h")
    tensors = st.load_file(path)
    tensors["fc2.bias"] = tensors["fc2.bias"] + 1e-3  # edited after saving
    st.save_file(tensors, path)
    with pytest.raises(params_lib.WeightsError, match=rf"^{path}: its weights are not the ones config.json records") as e:
        VGGish.from_pretrained(tmp_path / "h")
    assert "\n" not in str(e.value)
    tensors["conv2.kernel"] = tensors["conv2.kernel"][..., :3]  # wrong shape
    st.save_file(tensors, path)
    with pytest.raises(params_lib.WeightsError, match=rf"^{path}: tensor conv2/kernel has shape \(3, 3, 8, 3\)"):
        VGGish.from_pretrained(tmp_path / "h")
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(params_lib.WeightsError, match=rf"^{path}: not a readable safetensors file") as e:
        VGGish.from_pretrained(tmp_path / "h")
    assert "\n" not in str(e.value)
