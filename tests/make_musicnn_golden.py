"""Regenerate tests/data/musicnn_golden.npz from the ORIGINAL MSD_musicnn graph (not a test).

    python tests/make_musicnn_golden.py --reference ../shared/tools/musicnn_reference.py \
        --wheel musicnn-0.1.0-py3-none-any.whl --out tests/data/musicnn_golden.npz [--compare OLD.npz]

Run it in a venv with TensorFlow (`pip install tensorflow-cpu numpy`); the wheel comes from
`pip download --no-deps musicnn==0.1.0` (or pass --checkpoint site-packages/musicnn/MSD_musicnn/ of an
installed copy). musicnn_reference.py (the shared tool that strips the training ops from the wheel's .meta
graph and runs it) saves the graph's tensors under their op names; the golden names them as
tests/test_musicnn.py reads them (OUTPUTS below), with the pools' trailing unit axis dropped. The input is
the committed golden's `input` (log-mel patches made by tests/data/musicnn_golden_make_input.py with
librosa 0.11), unless --input names another [batch, 187, 96] float32 .npy.

Checked with TensorFlow 2.21.0 (CPU): max_pool and mean_pool come out bit-identical to the committed
golden, taggram, logits and penultimate within 5e-7 (float summation order); --compare prints the
differences and fails above 1e-5 of each array's scale.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "data", "musicnn_golden.npz")
# golden key -> the op of musicnn 0.1.0's models.py backend() it holds (the graph's names)
OUTPUTS = {
    "logits": "model/dense_1/BiasAdd",  # the output dense layer, before the sigmoid (taggram)
    "penultimate": "model/batch_normalization_10/batchnorm/add_1",  # bn_dense: the 200-d penultimate layer
    "max_pool": "model/Max",  # tf.reduce_max over time of the 753-channel front+mid-end feature map
    "mean_pool": "model/moments/Squeeze",  # tf.nn.moments' mean over time of the same map
}
SQUEEZED = ("max_pool", "mean_pool")  # [batch, 753, 1] in the graph
TOLERANCE = 1e-5


def checkpoint_from_wheel(wheel: str, into: str) -> str:
    """The MSD_musicnn checkpoint prefix inside the unpacked wheel (its files are '.meta', '.index', ...)."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(into, [n for n in z.namelist() if n.startswith("musicnn/MSD_musicnn/")])
    return os.path.join(into, "musicnn", "MSD_musicnn") + os.sep


def run_reference(reference: str, checkpoint: str, inputs: np.ndarray, work: str) -> dict[str, np.ndarray]:
    """The original graph's taggram and OUTPUTS on `inputs`, renamed and squeezed as the golden holds them."""
    path, out = os.path.join(work, "input.npy"), os.path.join(work, "reference.npz")
    np.save(path, inputs.astype(np.float32))
    env = dict(os.environ, TENSORS=",".join(OUTPUTS.values()))
    subprocess.run([sys.executable, reference, checkpoint, path, out], env=env, check=True)
    with np.load(out) as z:
        found = {"input": z["input"], "taggram": z["taggram"]}
        for key, op in OUTPUTS.items():
            value = z[op.replace("/", "__")]
            found[key] = value.squeeze(-1) if key in SQUEEZED else value
    return {k: np.asarray(v, np.float32) for k, v in found.items()}


def compare(new: dict[str, np.ndarray], old_path: str) -> bool:
    with np.load(old_path) as old:
        ok = sorted(old.files) == sorted(new)
        for key in old.files:
            a, b = new[key], old[key]
            diff = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
            same = "identical" if a.shape == b.shape and np.array_equal(a, b) else f"max |diff| {diff:.3g}"
            print(f"{key}: {a.shape} {same}")
            ok &= diff <= TOLERANCE * max(1.0, float(np.abs(b).max()))
    return ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", required=True, help="path to shared/tools/musicnn_reference.py")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheel", help="musicnn-0.1.0-py3-none-any.whl")
    source.add_argument("--checkpoint", help="the MSD_musicnn checkpoint prefix (a folder path ending in /)")
    p.add_argument("--input", help="[batch, 187, 96] float32 .npy (default: the committed golden's input)")
    p.add_argument("--out", required=True, help="where to write the golden .npz")
    p.add_argument("--compare", help="a golden to compare with (e.g. the committed one)")
    args = p.parse_args(argv)
    if args.input:
        inputs = np.load(args.input)
    else:
        with np.load(GOLDEN) as z:
            inputs = z["input"]
    with tempfile.TemporaryDirectory() as work:
        checkpoint = checkpoint_from_wheel(args.wheel, work) if args.wheel else args.checkpoint
        golden = run_reference(os.path.abspath(args.reference), checkpoint, inputs, work)
    np.savez(args.out, **golden)
    print(f"wrote {args.out}")
    return 0 if args.compare is None or compare(golden, args.compare) else 1


if __name__ == "__main__":
    sys.exit(main())
