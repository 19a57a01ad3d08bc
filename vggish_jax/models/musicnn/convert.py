"""The `musicnn` 0.1.0 wheel's MSD_musicnn TF1 checkpoint -> vggish_jax/assets/msd_musicnn.npz.

    python -m vggish_jax.models.musicnn.convert --wheel musicnn-0.1.0-py3-none-any.whl --out vggish_jax/assets/msd_musicnn.npz
    (or --from-pip: `pip download --no-deps musicnn==0.1.0` first, needs the registry)

Needs TensorFlow to read the checkpoint (the `musicnn-convert` extra); the mapping itself is plain NumPy.
tf.layers named the variables by creation order: batch_normalization .. _10, conv2d .. _7,
dense and dense_1, in the order musicnn's models.py builds them (see TF_ORDER).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from vggish_jax import atomic

MODEL = "MSD_musicnn"
# (our module, TF layer) in creation order: input BN; timbral 7x38 and 7x67; temporal 128, 64, 32; mid end; back end.
TF_ORDER = [
    ("input_bn", "batch_normalization"),
    ("timbral_74", "conv2d"), ("timbral_74_bn", "batch_normalization_1"),
    ("timbral_77", "conv2d_1"), ("timbral_77_bn", "batch_normalization_2"),
    ("temporal_128", "conv2d_2"), ("temporal_128_bn", "batch_normalization_3"),
    ("temporal_64", "conv2d_3"), ("temporal_64_bn", "batch_normalization_4"),
    ("temporal_32", "conv2d_4"), ("temporal_32_bn", "batch_normalization_5"),
    ("mid1", "conv2d_5"), ("mid1_bn", "batch_normalization_6"),
    ("mid2", "conv2d_6"), ("mid2_bn", "batch_normalization_7"),
    ("mid3", "conv2d_7"), ("mid3_bn", "batch_normalization_8"),
    ("pool_bn", "batch_normalization_9"),
    ("dense", "dense"), ("dense_bn", "batch_normalization_10"),
    ("logits", "dense_1"),
]
BN_PARTS = {"scale": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}


def params_from_variables(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TF variable dict -> flat {'module/part': array} in our layout (mid-end 2-D kernels become 1-D convs)."""
    out = {}
    for ours, tf_name in TF_ORDER:
        prefix = f"{tf_name}/"
        if tf_name.startswith("batch_normalization"):
            parts = {p: prefix + t for p, t in BN_PARTS.items()}
        else:
            parts = {"kernel": prefix + "kernel", "bias": prefix + "bias"}
        for part, name in parts.items():
            if name not in variables:
                raise KeyError(f"checkpoint has no variable {name!r} (for {ours}/{part})")
            v = np.asarray(variables[name], np.float32)
            if ours.startswith("mid") and part == "kernel":
                v = v.reshape(v.shape[0], v.shape[1], v.shape[3])  # [7, W, 1, 64] conv2d over full width = 1-D conv
            out[f"{ours}/{part}"] = v
    return out


def read_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    import tensorflow as tf

    # The wheel's 'checkpoint' index file points at the author's machine, so open the prefix directly.
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def convert_wheel(wheel: str, out: str) -> str:
    with tempfile.TemporaryDirectory() as d:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(d)
        prefix = os.path.join(d, "musicnn", MODEL) + os.sep  # the files are named '.index', '.data-...'
        params = params_from_variables(read_checkpoint(prefix))
    atomic.savez(out, compressed=True, **params)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--wheel", help="musicnn-0.1.0-py3-none-any.whl")
    src.add_argument("--from-pip", action="store_true", help="pip download musicnn==0.1.0 first")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    wheel = args.wheel
    if args.from_pip:
        d = tempfile.mkdtemp()
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "musicnn==0.1.0", "-d", d], check=True)
        wheel = os.path.join(d, next(f for f in os.listdir(d) if f.endswith(".whl")))
    print(f"wrote {convert_wheel(wheel, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
