"""What `convert` does with the files it is given: every PCA file is used or refused (and metadata.json names
only the files used), files of the wrong kind are named as what they are, the .pth variants people actually
have (bfloat16, a training checkpoint's nested state dict) convert, extra tensors are refused by name, and
two conversions into one folder do not interleave.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import require
from vggish_jax import atomic, cli
from vggish_jax.models.vggish import params as params_lib
from vggish_jax.models.vggish.convert import core, published
from vggish_jax.models.vggish.params import WeightsError

torch = require("torch", "writing .pth files needs torch")
tv = require("torchvggish.torchvggish", "torchvggish 0.2 is in the test extra")
import published_formats  # noqa: E402


@pytest.fixture(scope="module")
def state():
    """A torchvggish VGGish state dict made by torchvggish's own module (the published file's layout)."""
    torch.manual_seed(2)
    return tv.VGG(tv.make_layers(), postprocess=False).state_dict()


@pytest.fixture(scope="module")
def pca_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pca")
    pca = published_formats.random_pca(4, means_shape=(128, 1))
    npz, pth = d / "vggish_pca_params.npz", d / "vggish_pca_params-970ea276.pth"
    np.savez(npz, **pca)
    published_formats.save(pca, pth)
    return pca, str(npz), str(pth)


def _meta(out):
    return json.load(open(os.path.join(out, params_lib.METADATA)))


def test_pca_with_random_weights_is_used_and_recorded(tmp_path, pca_files):
    pca, npz, _ = pca_files
    out = core.convert(str(tmp_path / "w"), random_seed=0, pca=npz)
    _, got, _ = params_lib.load(out)
    # the weights folder stores PCA params as float32
    np.testing.assert_array_equal(got.eigen_vectors, pca["pca_eigen_vectors"].astype(np.float32))
    np.testing.assert_array_equal(got.means, pca["pca_means"].reshape(-1).astype(np.float32))
    meta = _meta(out)
    assert meta["files"] == {"pca": os.path.abspath(npz)} and set(meta["hashes"]) == {os.path.basename(npz)}


def test_tf_pca_with_torch_weights_is_used_not_ignored(tmp_path, state, pca_files):
    """--pca is read by its content: TF's .npz goes with torchvggish weights too."""
    pca, npz, _ = pca_files
    weights = tmp_path / "vggish-10086976.pth"
    published_formats.save(state, weights)
    out = core.convert(str(tmp_path / "w"), torch_weights=str(weights), pca=npz)
    _, got, _ = params_lib.load(out)
    np.testing.assert_array_equal(got.eigen_vectors, pca["pca_eigen_vectors"].astype(np.float32))
    assert _meta(out)["files"] == {"weights": str(weights), "pca": os.path.abspath(npz)}


def test_without_pca_metadata_names_no_pca_file(tmp_path, state):
    weights = tmp_path / "vggish-10086976.pth"
    published_formats.save(state, weights)
    out = core.convert(str(tmp_path / "w"), torch_weights=str(weights))
    assert params_lib.load(out)[1] is None
    meta = _meta(out)
    assert meta["files"] == {"weights": str(weights)} and set(meta["hashes"]) == {weights.name}


def test_pca_files_that_cannot_be_used_are_refused(tmp_path, pca_files, capsys):
    _, npz, pth = pca_files
    with pytest.raises(ValueError, match="--download torch fetches its own PCA file; drop --pca"):
        core.convert(str(tmp_path / "w"), download_source="torch", pca=npz)
    # --verify alone checks the folder as it is: a PCA file there would be ignored, so it is refused
    assert cli.main(["convert", "--verify", "--pca", pth, "--out", str(tmp_path / "w")]) == 2
    assert "a PCA file is used only when converting" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_csv_given_as_pca_is_refused_naming_it(tmp_path):
    csv = tmp_path / "genres.csv"
    csv.write_text("track_id,genre\n2,Hip-Hop\n3,Rock\n")
    with pytest.raises(WeightsError, match=rf"^{csv}: is a text file \(CSV or similar\), not a VGGish PCA file; "
                                           r"pass vggish_pca_params.npz") as err:
        core.convert(str(tmp_path / "w"), random_seed=0, pca=str(csv))
    assert "\n" not in str(err.value) and "pickle" not in str(err.value)
    assert not (tmp_path / "w").exists()


def test_csv_given_as_weights_is_refused_naming_it(tmp_path):
    csv = tmp_path / "weights.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(WeightsError, match=rf"^{csv}: is a text file \(CSV or similar\), not a PyTorch .pth file"):
        core.convert(str(tmp_path / "w"), torch_weights=str(csv))


def test_bfloat16_pth_converts_to_float32(tmp_path, state):
    half = {k: v.to(torch.bfloat16) for k, v in state.items()}
    path = tmp_path / "vggish_bf16.pth"
    published_formats.save(half, path, legacy=False)
    p = published.params_from_state_dict(published.load_pth(path), str(path))
    assert p["conv1"]["kernel"].dtype == np.float32
    # torch's own widening is the oracle: bfloat16 -> float32 is exact
    np.testing.assert_array_equal(p["conv1"]["kernel"][:, :, 0, 5], half["features.0.weight"][5, 0].float().numpy())
    np.testing.assert_array_equal(p["fc2"]["kernel"], half["embeddings.4.weight"].float().numpy().T)


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_state_dict_nested_in_a_training_checkpoint_is_unwrapped(tmp_path, state, key):
    path = tmp_path / "checkpoint.pth"
    published_formats.save({key: state, "epoch": 7}, path, legacy=False)
    p = published.params_from_state_dict(published.load_pth(path), str(path))
    np.testing.assert_array_equal(p["fc1_1"]["kernel"], state["embeddings.0.weight"].numpy().T)
    np.testing.assert_array_equal(p["conv4_2"]["bias"], state["features.13.bias"].numpy())


def test_extra_tensors_are_refused_by_name(tmp_path, state):
    extra = dict(state)
    extra["classifier.weight"] = torch.zeros(10, 128)
    extra["pproc._pca_means"] = torch.zeros(128)
    path = tmp_path / "extra.pth"
    published_formats.save(extra, path, legacy=False)
    with pytest.raises(WeightsError, match=r"extra.pth: unexpected keys \['classifier.weight', 'pproc._pca_means'\]"):
        core.convert(str(tmp_path / "w"), torch_weights=str(path))
    assert not (tmp_path / "w").exists()


def _small():
    return {"layer": {"kernel": np.ones((8, 8), np.float32)}}


HOLD = """
import sys
from vggish_jax import atomic
from vggish_jax.models.vggish.convert import core
with atomic.exclusive(core.lock_path(sys.argv[1]), sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_second_convert_into_one_folder_names_the_first(tmp_path, capsys):
    out = str(tmp_path / "w")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, out], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli.main(["convert", "--random", "0", "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert f"{out}: another process is writing it (pid {holder.pid} on " in err
        with pytest.raises(atomic.BusyError, match=f"pid {holder.pid}"):
            core.save_beside(out, _small(), metadata={})
        assert sorted(os.listdir(tmp_path)) == [".w.lock"]  # nothing of the refused writers
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    core.save_beside(out, _small(), metadata={"source": "random"})  # released: the next one writes
    assert sorted(os.listdir(tmp_path)) == ["w"]


def test_lock_of_a_dead_convert_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = str(tmp_path / "w")
    with open(core.lock_path(out), "w") as f:
        json.dump({"pid": int(dead.stdout), "host": __import__("socket").gethostname()}, f)
    core.save_beside(out, _small(), metadata={"source": "random"})
    assert sorted(os.listdir(tmp_path)) == ["w"]
