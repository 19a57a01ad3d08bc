"""Write files the way the published torchvggish v0.1 release files were written (test helper).

vggish_pca_params-970ea276.pth (2019): torch 1.x `torch.save` in the legacy (non-zip) serialisation of a dict
of NumPy float64 arrays pickled under NumPy 1.x, so the pickle names `numpy.core.multiarray._reconstruct`.
Under NumPy 2 a pickle names `numpy._core.multiarray`; `numpy1_names=True` rewrites that one GLOBAL to the
1.x spelling, which is what such a file holds byte for byte (protocol 2 GLOBALs are newline-terminated
text, so the rewrite needs no length fix-ups).
"""
from __future__ import annotations

import io
import pickle
import types

import numpy as np
import torch

NUMPY2_MODULE = b"cnumpy._core.multiarray\n"
NUMPY1_MODULE = b"cnumpy.core.multiarray\n"


class _NumPy1Pickler(pickle.Pickler):
    """A Pickler that writes NumPy 1.x module names for arrays, whatever NumPy is installed."""

    def __init__(self, file, protocol=None, **kwargs):
        self._out, self._buf = file, io.BytesIO()
        super().__init__(self._buf, protocol, **kwargs)

    def dump(self, obj):
        super().dump(obj)
        self._out.write(self._buf.getvalue().replace(NUMPY2_MODULE, NUMPY1_MODULE))
        self._buf.seek(0)
        self._buf.truncate()


NUMPY1_PICKLE = types.SimpleNamespace(Pickler=_NumPy1Pickler, dump=pickle.dump, __name__="pickle")


def save(obj, path, *, legacy: bool = True, numpy1_names: bool = True) -> None:
    """torch.save `obj` as torch 1.x did (legacy) or as torch >= 1.6 does (zip)."""
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy,
               pickle_module=NUMPY1_PICKLE if numpy1_names else pickle)


def random_pca(seed: int = 0, means_shape=(128,)) -> dict[str, np.ndarray]:
    """A PCA dict like the published one: float64 NumPy arrays, orthogonal rows scaled like a whitening."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(128, 128)))[0] * 3.0
    return {"pca_eigen_vectors": q, "pca_means": (rng.normal(size=128) * 0.1).reshape(means_shape)}
