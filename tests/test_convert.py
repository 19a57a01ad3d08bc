"""Weight conversion: synthetic weights in the published torchvggish / TF-slim formats -> our checkpoint -> parity.

Oracle: torchvggish 0.2's own `VGG` module and `Postprocessor` maths (test extra), not an architecture
written here.
"""
import importlib.util
import os
import pickle

import numpy as np
import pytest

from conftest import require
from vggish_jax import cli
from vggish_jax.pipeline.embed import load_pretrained
from vggish_jax.models.vggish import postprocess as post
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.convert import published
from vggish_jax.models.vggish.convert.core import convert

torch = require("torch", "the parity oracle needs torch")
tv = require("torchvggish.torchvggish", "the oracle is torchvggish 0.2")
import published_formats  # noqa: E402

TF_NAMES = {  # TF-slim variable -> torchvggish key, spelled out independently of the converter
    "vggish/conv1/weights": "features.0.weight", "vggish/conv1/biases": "features.0.bias",
    "vggish/conv2/weights": "features.3.weight", "vggish/conv2/biases": "features.3.bias",
    "vggish/conv3/conv3_1/weights": "features.6.weight", "vggish/conv3/conv3_1/biases": "features.6.bias",
    "vggish/conv3/conv3_2/weights": "features.8.weight", "vggish/conv3/conv3_2/biases": "features.8.bias",
    "vggish/conv4/conv4_1/weights": "features.11.weight", "vggish/conv4/conv4_1/biases": "features.11.bias",
    "vggish/conv4/conv4_2/weights": "features.13.weight", "vggish/conv4/conv4_2/biases": "features.13.bias",
    "vggish/fc1/fc1_1/weights": "embeddings.0.weight", "vggish/fc1/fc1_1/biases": "embeddings.0.bias",
    "vggish/fc1/fc1_2/weights": "embeddings.2.weight", "vggish/fc1/fc1_2/biases": "embeddings.2.bias",
    "vggish/fc2/weights": "embeddings.4.weight", "vggish/fc2/biases": "embeddings.4.bias",
}


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    torch.manual_seed(0)
    model = tv.VGG(tv.make_layers(), postprocess=False).eval()  # torchvggish's own module, no download
    with torch.no_grad():  # default init gives tiny activations; widen so the comparison means something
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.bias.uniform_(-0.1, 0.1)
    d = tmp_path_factory.mktemp("torchvggish")
    weights, pca_path = d / "vggish-10086976.pth", d / "vggish_pca_params-970ea276.pth"
    published_formats.save(model.state_dict(), weights, legacy=True)
    pca = published_formats.random_pca(0, means_shape=(128, 1))
    published_formats.save(pca, pca_path, legacy=True, numpy1_names=True)
    return model, str(weights), str(pca_path), pca


@pytest.fixture(scope="module")
def converted(torch_files, tmp_path_factory):
    _, weights, pca_path, _ = torch_files
    return convert(str(tmp_path_factory.mktemp("conv") / "w"), torch_weights=weights, pca=pca_path)


@pytest.fixture(scope="module")
def examples():
    return np.random.default_rng(0).normal(size=(5, 96, 64)).astype(np.float32)


def torch_embed(model, x, final_relu=True):
    with torch.no_grad():
        t = torch.from_numpy(x[:, None].copy())
        if final_relu:
            return model(t).numpy()
        f = model.features(t)
        f = torch.transpose(torch.transpose(f, 1, 3), 1, 2).contiguous().view(f.size(0), -1)
        return model.embeddings[:5](f).numpy()


@pytest.mark.parametrize("final_relu", [True, False])
def test_torch_parity(torch_files, converted, examples, final_relu):
    model = torch_files[0]
    emb = load_pretrained(converted, final_relu=final_relu, batch_size=8)
    want = torch_embed(model, examples, final_relu)
    got = emb.embed_examples(examples)
    assert np.abs(want).max() > 1e-3  # a meaningful scale
    assert np.abs(got - want).max() <= 1e-4
    if not final_relu:
        assert (want < 0).any()


def test_metadata_and_default_final_relu(converted, torch_files):
    emb = load_pretrained(converted)
    assert emb.final_relu is True and emb.metadata["source"] == "torchvggish"
    assert emb.metadata["hashes"]["vggish-10086976.pth"] == published.sha256(torch_files[1])


def torchvggish_postprocess(raw, pca):
    """torchvggish's Postprocessor.postprocess on `pca` as its loader reads it, kept in float64 (its loader
    casts to float32, which moves a few values across a rounding boundary; TF and we keep float64)."""
    proc = tv.Postprocessor.__new__(tv.Postprocessor)  # its __init__ downloads the published file
    proc._pca_matrix = torch.as_tensor(pca["pca_eigen_vectors"])
    proc._pca_means = torch.as_tensor(pca["pca_means"].reshape(-1, 1))
    return proc.postprocess(torch.from_numpy(raw.astype(np.float64))).numpy()


def test_pca_postprocess_matches_torchvggish(torch_files, converted, examples):
    model, _, _, pca = torch_files
    emb = load_pretrained(converted, batch_size=8)
    raw = emb.embed_examples(examples)
    got = emb.postprocess(raw, rounding="round")
    np.testing.assert_array_equal(got, torchvggish_postprocess(raw, pca).astype(np.uint8))
    assert len(np.unique(got)) > 20


def test_tf_slim_variables_parity(torch_files, examples, tmp_path):
    model = torch_files[0]
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    variables = {}
    for tf_name, key in TF_NAMES.items():
        v = state[key]
        variables[tf_name] = v.transpose(2, 3, 1, 0) if v.ndim == 4 else (v.T if v.ndim == 2 else v)
    p = published.params_from_variables(variables)
    from vggish_jax.models.vggish import params as params_lib
    params_lib.save(tmp_path / "w", p)
    got = load_pretrained(tmp_path / "w", final_relu=True, batch_size=8).embed_examples(examples)
    assert np.abs(got - torch_embed(model, examples)).max() <= 1e-4


def test_errors_name_the_file_and_tensor(torch_files, tmp_path):
    model, weights, _, _ = torch_files
    truncated = tmp_path / "truncated.pth"
    with open(weights, "rb") as f:
        truncated.write_bytes(f.read()[: os.path.getsize(weights) // 3])
    with pytest.raises(WeightsError, match="truncated.pth: not a readable PyTorch state dict"):
        convert(str(tmp_path / "o1"), torch_weights=str(truncated))

    state = dict(model.state_dict())
    state["features.6.weight"] = state["features.6.weight"][:, :64]
    bad = tmp_path / "bad_shape.pth"
    torch.save(state, bad)
    with pytest.raises(WeightsError, match=r"bad_shape.pth: tensor features.6.weight does not fit VGGish conv3_1/kernel"):
        convert(str(tmp_path / "o2"), torch_weights=str(bad))

    state = dict(model.state_dict())
    del state["embeddings.4.bias"]
    missing = tmp_path / "missing.pth"
    torch.save(state, missing)
    with pytest.raises(WeightsError, match="missing.pth: missing tensor 'embeddings.4.bias'"):
        convert(str(tmp_path / "o3"), torch_weights=str(missing))
    assert not os.path.exists(tmp_path / "o3")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickled_code_is_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"features.0.weight": _Exploit()}, f)
    with pytest.raises(WeightsError, match="evil.pth"):
        published.load_pth(evil)
    assert not (tmp_path / "pwned").exists()


def test_bad_pca_files(tmp_path):
    np.savez(tmp_path / "pca.npz", pca_eigen_vectors=np.eye(128))
    with pytest.raises(WeightsError, match="pca.npz: missing array 'pca_means'"):
        published.load_pca_npz(tmp_path / "pca.npz")
    for shape in [(128, 1), (128,)]:  # TF's postprocessor reshapes the means to a column, so both occur
        means = np.arange(128.0).reshape(shape)
        np.savez(tmp_path / "pca2.npz", pca_eigen_vectors=np.eye(128), pca_means=means)
        np.testing.assert_array_equal(published.load_pca_npz(tmp_path / "pca2.npz").means, np.arange(128.0))
    nan = np.eye(128)
    nan[3, 5] = np.nan
    np.savez(tmp_path / "pca3.npz", pca_eigen_vectors=nan, pca_means=np.zeros(128))
    with pytest.raises(WeightsError, match=r"pca3.npz: PCA params contain NaN/inf.*download it again"):
        published.load_pca_npz(tmp_path / "pca3.npz")
    with pytest.raises(WeightsError, match=r"vggish_pca_params.pth: PCA params contain NaN/inf"):
        published.pca_from_state_dict({"pca_eigen_vectors": nan, "pca_means": np.zeros(128)},
                                        "vggish_pca_params.pth")


def _small(seed):
    """A small tree in place of VGGish (params_lib.save/load do not check the architecture): fast to write."""
    rng = np.random.default_rng(seed)
    return {f"layer{i}": {"kernel": rng.normal(size=(64, 64)).astype(np.float32)} for i in range(3)}


def _content(directory):
    """sha256 of the weights' content as loaded (not as recorded), and the seed recorded with them."""
    from vggish_jax.models.vggish import params as params_lib
    from vggish_jax.spec import params_sha256

    params, _, meta = params_lib.load(directory)
    return params_sha256(params), meta["seed"]


def test_convert_stopped_half_way_keeps_the_old_weights(tmp_path, monkeypatch):
    """The new weights are written beside --out and swapped in at the end: a stop while writing them (here
    Ctrl-C after orbax wrote part of them) leaves the old weights loadable, and nothing else behind."""
    from vggish_jax.models.vggish import params as params_lib
    from vggish_jax.models.vggish.convert.core import save_beside

    out = str(tmp_path / "w")
    save_beside(out, _small(0), metadata={"source": "random", "seed": 0})
    before = _content(out)
    real_save = params_lib.save

    def save_then_stop(directory, *a, **k):
        real_save(directory, *a, **k)
        biggest = max((os.path.join(r, n) for r, _, ns in os.walk(directory) for n in ns), key=os.path.getsize)
        os.truncate(biggest, 10)  # a half-written file
        raise KeyboardInterrupt

    monkeypatch.setattr(params_lib, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        save_beside(out, _small(1), metadata={"source": "random", "seed": 1})
    assert _content(out) == before and before[1] == 0
    assert sorted(os.listdir(tmp_path)) == ["w"]
    monkeypatch.setattr(params_lib, "save", real_save)
    save_beside(out, _small(1), metadata={"source": "random", "seed": 1})  # and a finished one replaces them
    assert _content(out)[1] == 1 and sorted(os.listdir(tmp_path)) == ["w"]


def test_convert_killed_between_the_renames_gets_its_old_weights_back(tmp_path, capsys):
    """A SIGKILL after the old weights were moved aside and before the new ones took their place: the next
    convert puts the old ones back (and then refuses to replace them without --overwrite)."""
    from vggish_jax.models.vggish.convert.core import save_beside

    out = tmp_path / "w"
    save_beside(str(out), _small(0), metadata={"source": "random", "seed": 0})
    before = _content(out)
    aside = tmp_path / ".w.old-abc"
    aside.mkdir()
    os.rename(out, aside / "weights")
    (tmp_path / ".w.new-def").mkdir()  # the unfinished new weights
    assert cli.main(["convert", "--random", "1", "--out", str(out)]) == 2
    assert "holds converted weights already; pass --overwrite" in capsys.readouterr().err
    assert _content(out) == before
    assert sorted(os.listdir(tmp_path)) == ["w"]


def test_converted_files_respect_the_umask(tmp_path):
    """Not mkstemp's private 0600: a user sharing weights with umask 027 gives the group read access."""
    from vggish_jax.models.vggish.convert.core import save_beside

    old = os.umask(0o027)
    try:
        save_beside(str(tmp_path / "w"), _small(0), metadata={"source": "random"})
    finally:
        os.umask(old)
    modes = {os.path.relpath(os.path.join(r, n), tmp_path): os.stat(os.path.join(r, n)).st_mode & 0o777
             for r, ds, ns in os.walk(tmp_path / "w") for n in ns + ds}
    assert modes["w/metadata.json"] == 0o640
    assert all(m == (0o750 if os.path.isdir(tmp_path / p) else 0o640) for p, m in modes.items()), modes
    assert os.stat(tmp_path / "w").st_mode & 0o777 == 0o750


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow is installed here")
def test_tf_checkpoint_without_tensorflow_says_how_to_fix(tmp_path):
    with pytest.raises(WeightsError, match=r"needs TensorFlow.*vggish-jax\[tf\]"):
        published.read_checkpoint(tmp_path / "vggish_model.ckpt")


def test_download_offline_gives_one_clear_line(tmp_path, monkeypatch):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port now
    spec = published.FILES["torch_weights"]
    monkeypatch.setitem(published.FILES, "torch_weights",
                        published.Published(spec.name, f"http://127.0.0.1:{port}/{spec.name}", spec.sha256_prefix))
    monkeypatch.setenv(published.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match="cannot download .*--torch-weights") as err:
        published.fetch("torch_weights", timeout=5)
    assert "\n" not in str(err.value)
    assert os.listdir(tmp_path / "cache") == []


def test_download_verifies_hash_and_caches(tmp_path, monkeypatch):
    src = tmp_path / "published.bin"
    src.write_bytes(b"vggish" * 1000)
    digest = published.sha256(str(src))
    monkeypatch.setenv(published.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(published.FILES, "tf_pca", published.Published("pca.npz", src.as_uri(), digest[:8]))
    path = published.fetch("tf_pca")
    assert open(path, "rb").read() == src.read_bytes()
    src.unlink()
    assert published.fetch("tf_pca") == path  # served from the cache
    monkeypatch.setitem(published.FILES, "tf_pca", published.Published("pca.npz", "file:///nowhere", "00000000"))
    with pytest.raises(WeightsError, match="does not start with 00000000"):
        published.fetch("tf_pca")


def test_cli_convert_then_embed(torch_files, tmp_path, capsys):
    _, weights, pca_path, _ = torch_files
    out = tmp_path / "w"
    assert cli.main(["convert", "--torch-weights", weights, "--pca", pca_path, "--final-relu", "no",
                     "--out", str(out)]) == 0
    assert "final_relu=False" in capsys.readouterr().out
    emb = load_pretrained(out)
    assert emb.final_relu is False and isinstance(emb.pca, post.PCAParams)
    assert cli.main(["convert", "--out", str(tmp_path / "x")]) == 2
    assert "exactly one source" in capsys.readouterr().err
