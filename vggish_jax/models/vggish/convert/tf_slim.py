"""TF-slim VGGish checkpoint (tensorflow/models research/audioset/vggish) -> our parameter layout.
Variables vggish/<block>/[<layer>/]{weights,biases}, HWIO and [in, out] as ours; the PCA .npz holds
'pca_eigen_vectors' [128, 128] and 'pca_means' [128, 1]. Reading the checkpoint needs TensorFlow (`tf` extra).
"""
from __future__ import annotations

import os

import numpy as np

from vggish_jax.models.vggish import params as params_lib
from vggish_jax.models.vggish.convert import formats
from vggish_jax.models.vggish.params import WeightsError
from vggish_jax.models.vggish.postprocess import PCAParams

SCOPES = {"conv1": "conv1", "conv2": "conv2", "conv3_1": "conv3/conv3_1", "conv3_2": "conv3/conv3_2",
          "conv4_1": "conv4/conv4_1", "conv4_2": "conv4/conv4_2", "fc1_1": "fc1/fc1_1", "fc1_2": "fc1/fc1_2",
          "fc2": "fc2"}


def variable_names() -> dict[tuple[str, str], str]:
    """(layer, 'kernel'|'bias') -> TF variable name."""
    return {(layer, part): f"vggish/{scope}/{tf_part}" for layer, scope in SCOPES.items()
            for part, tf_part in (("kernel", "weights"), ("bias", "biases"))}


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All variables of a TF checkpoint (V1 single file or V2 prefix) as numpy arrays."""
    path = os.fspath(path)
    try:
        import tensorflow as tf
    except ImportError as e:
        raise WeightsError(f"{path}: reading TF checkpoints needs TensorFlow; pip install 'vggish-jax[tf]', "
                           f"or convert torchvggish's .pth instead (--torch-weights)") from e
    try:
        reader = tf.train.load_checkpoint(path)
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    except Exception as e:
        raise WeightsError(f"{path}: not a readable TF checkpoint ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200]}); the file is truncated or corrupt") from e


def params_from_variables(variables: dict[str, np.ndarray], source: str = "checkpoint") -> dict:
    """TF-slim variables -> our layout, checked by params.validate (naming the TF variables)."""
    params: dict = {}
    names = variable_names()
    for (layer, part), name in names.items():
        if name not in variables:
            raise WeightsError(f"{source}: missing variable {name!r}; is this the VGGish TF-slim checkpoint?")
        params.setdefault(layer, {})[part] = np.asarray(variables[name], np.float32)
    params_lib.validate(params, source, name_of=lambda layer, part: names[layer, part])
    return params


def load_pca_npz(path: str | os.PathLike) -> PCAParams:
    """vggish_pca_params.npz -> PCAParams. Loaded with allow_pickle=False: pickled objects are refused, never run."""
    path = os.fspath(path)
    formats.require(path, ("npz",), "a NumPy .npz archive", "pass TF's vggish_pca_params.npz "
                    "(or torchvggish's vggish_pca_params-970ea276.pth, also as --pca)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise WeightsError(f"{path}: refused: this file contains pickled Python objects, not plain arrays, so "
                               f"loading it could run code; it is not vggish_pca_params.npz as published") from e
        raise WeightsError(f"{path}: not a readable .npz ({type(e).__name__}); download it again") from e
    except Exception as e:
        raise WeightsError(f"{path}: not a readable .npz ({type(e).__name__}); download it again") from e
    return formats.pca(arrays, path, "array {key}; expected vggish_pca_params.npz (pca_eigen_vectors, pca_means)")
