"""The published torchvggish files' serialisations are read, and nothing in a weight file can run code.

Fixtures are written as the release files were (tests/published_formats.py): legacy torch.save, PCA as NumPy
float64 arrays pickled with NumPy 1.x module names; zip and NumPy 2.x variants too.
"""
import builtins
import os

import numpy as np
import pytest

from conftest import require
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.convert import published
from vggish_jax.models.vggish.convert.core import convert

torch = require("torch", "reading .pth files needs torch")
import published_formats  # noqa: E402


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
@pytest.mark.parametrize("numpy1_names", [True, False], ids=["numpy1", "numpy2"])
@pytest.mark.parametrize("means_shape", [(128, 1), (128,)], ids=["means_128x1", "means_128"])
def test_published_pca_file_formats_load(tmp_path, legacy, numpy1_names, means_shape):
    pca = published_formats.random_pca(1, means_shape)
    path = tmp_path / "vggish_pca_params-970ea276.pth"
    published_formats.save(pca, path, legacy=legacy, numpy1_names=numpy1_names)
    raw = path.read_bytes()
    assert (b"numpy.core.multiarray" in raw) == numpy1_names and (b"numpy._core.multiarray" in raw) != numpy1_names
    assert raw.startswith(b"PK") != legacy  # zip archives start with a local file header
    with pytest.raises(Exception, match="Weights only load failed"):  # why the allowlist is needed at all
        torch.load(path, weights_only=True)

    state = published.load_pth(path)
    got = published.pca_from_state_dict(state, str(path))
    assert state["pca_eigen_vectors"].dtype == np.float64
    np.testing.assert_array_equal(got.eigen_vectors, pca["pca_eigen_vectors"])
    np.testing.assert_array_equal(got.means, pca["pca_means"].reshape(-1))


def test_weights_in_zip_format_convert(tmp_path):
    """torch >= 1.6 saves zip archives; the legacy format is what the other tests' weights use."""
    tv = require("torchvggish.torchvggish", "torchvggish 0.2 is in the test extra")
    torch.manual_seed(1)
    state = tv.VGG(tv.make_layers(), postprocess=False).state_dict()
    published_formats.save(state, tmp_path / "zip.pth", legacy=False)
    p = published.params_from_state_dict(published.load_pth(tmp_path / "zip.pth"))
    np.testing.assert_array_equal(p["conv1"]["kernel"][:, :, 0, 5], state["features.0.weight"][5, 0].numpy())
    np.testing.assert_array_equal(p["fc2"]["kernel"], state["embeddings.4.weight"].numpy().T)


class _System:  # pickles as a call of os.system (posix.system on Linux)
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
@pytest.mark.parametrize("smuggled, name", [(_System, r"(os|posix)\.system"), (_Eval, r"(builtins\.)?eval")],
                         ids=["os.system", "eval"])
def test_smuggled_global_is_refused_and_nothing_runs(tmp_path, legacy, smuggled, name):
    marker = tmp_path / "pwned"
    pca = published_formats.random_pca(2)
    pca["pca_means"] = smuggled(marker)  # next to real arrays, as a tampered download would be
    path = tmp_path / "vggish_pca_params-970ea276.pth"
    published_formats.save(pca, path, legacy=legacy)
    with pytest.raises(WeightsError, match=rf"{path.name}: refused: this file contains {name}, which is not a plain") as err:
        convert(str(tmp_path / "w"), torch_weights=str(path))
    assert "\n" not in str(err.value) and "corrupt" not in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_truncated_pca_file_is_called_corrupt_not_refused(tmp_path, legacy):
    path = tmp_path / "pca.pth"
    published_formats.save(published_formats.random_pca(3), path, legacy=legacy)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match="pca.pth: not a readable PyTorch state dict.*truncated or corrupt") as err:
        published.load_pth(path)
    assert "refused" not in str(err.value)


def test_pca_npz_with_pickled_objects_is_refused_and_nothing_runs(tmp_path):
    from vggish_jax.models.vggish.convert import published
    marker = tmp_path / "pwned"
    path = tmp_path / "vggish_pca_params.npz"
    np.savez(path, pca_eigen_vectors=np.eye(128), pca_means=np.array([_System(marker)], dtype=object))
    with pytest.raises(WeightsError, match="vggish_pca_params.npz: refused: this file contains pickled Python objects"):
        published.load_pca_npz(path)
    assert not marker.exists()
