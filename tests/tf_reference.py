"""Run under TensorFlow (CI's second venv): the TF reference that tests/test_convert_tf.py checks against.

    python tests/tf_reference.py OUT_DIR

Writes, in the published formats, files with random values:
- OUT_DIR/vggish_model.ckpt: a TF1 V1 single-file checkpoint (like the published one) holding the TF-slim
  variables vggish/conv1/weights ... vggish/fc2/biases;
- OUT_DIR/vggish_pca_params.npz: pca_eigen_vectors [128, 128] and pca_means [128, 1], float64;
- OUT_DIR/reference.npz: log-mel examples and TensorFlow's own forward pass of the reference architecture
  on them (the graph of tensorflow/models vggish_slim.py written with tf.nn ops: 3x3 SAME convs + ReLU, 2x2
  stride-2 SAME max-pools, flatten, fc1 x2 + ReLU, fc2 without activation), and the reference
  postprocessing (PCA, clip to [-2, 2], scale to 0..255, truncate to uint8) of those embeddings;
- OUT_DIR/converted/: our `vggish-jax convert --tf-checkpoint ... --pca ...` of the two files (the reader
  needs TensorFlow, so the conversion runs here; the main venv, where the tests run, has no TensorFlow).
"""
from __future__ import annotations

import os
import sys

import numpy as np

CONVS = [("conv1", 1, 64), ("conv2", 64, 128), ("conv3/conv3_1", 128, 256), ("conv3/conv3_2", 256, 256),
         ("conv4/conv4_1", 256, 512), ("conv4/conv4_2", 512, 512)]
POOL_AFTER = {"conv1", "conv2", "conv3/conv3_2", "conv4/conv4_2"}
FCS = [("fc1/fc1_1", 6 * 4 * 512, 4096), ("fc1/fc1_2", 4096, 4096), ("fc2", 4096, 128)]


def random_variables(seed: int = 0) -> dict[str, np.ndarray]:
    """He-scaled random kernels and non-zero biases, so every layer's output has a meaningful scale."""
    rng = np.random.default_rng(seed)
    v = {}
    for scope, cin, cout in CONVS:
        v[f"vggish/{scope}/weights"] = rng.normal(0, np.sqrt(2 / (9 * cin)), (3, 3, cin, cout)).astype(np.float32)
        v[f"vggish/{scope}/biases"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    for scope, fin, fout in FCS:
        v[f"vggish/{scope}/weights"] = rng.normal(0, np.sqrt(2 / fin), (fin, fout)).astype(np.float32)
        v[f"vggish/{scope}/biases"] = rng.uniform(-0.1, 0.1, fout).astype(np.float32)
    return v


def log_mels() -> np.ndarray:
    """Three examples of a tone mix through our NumPy frontend plus two Gaussian ones: [5, 96, 64] float32."""
    from vggish_jax.models.vggish import frontend
    t = np.arange(3 * 16000) / 16000
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t * (1 + t / 6))
    x += 0.01 * np.random.default_rng(1).standard_normal(t.size)
    ex = frontend.waveform_to_examples(x, 16000)
    noise = np.random.default_rng(2).normal(-2.0, 2.0, (2, 96, 64)).astype(np.float32)
    return np.concatenate([ex, noise]).astype(np.float32)


def write_checkpoint_and_run(variables: dict[str, np.ndarray], examples: np.ndarray, ckpt: str) -> np.ndarray:
    import tensorflow as tf
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as sess:
        made = {name: v1.get_variable(name, initializer=value) for name, value in variables.items()}
        x = v1.placeholder(tf.float32, (None, 96, 64), name="vggish/input_features")
        net = tf.reshape(x, [-1, 96, 64, 1])
        for scope, _, _ in CONVS:
            net = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(net, made[f"vggish/{scope}/weights"], 1, "SAME"),
                                            made[f"vggish/{scope}/biases"]))
            if scope in POOL_AFTER:
                net = tf.nn.max_pool2d(net, 2, 2, "SAME")
        net = tf.reshape(net, [-1, 6 * 4 * 512])  # slim.flatten: H, W, C order
        for scope, _, _ in FCS:
            net = tf.matmul(net, made[f"vggish/{scope}/weights"]) + made[f"vggish/{scope}/biases"]
            if scope != "fc2":
                net = tf.nn.relu(net)
        out = tf.identity(net, name="vggish/embedding")
        sess.run(v1.global_variables_initializer())
        saver = v1.train.Saver(list(made.values()), write_version=v1.train.SaverDef.V1)
        saver.save(sess, ckpt, write_meta_graph=False, write_state=False)
        return sess.run(out, {x: examples})


def reference_postprocess(embeddings: np.ndarray, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    pca = (eigen_vectors @ (embeddings.T.astype(np.float64) - means.reshape(-1, 1))).T
    return ((np.clip(pca, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    ckpt, pca_path = os.path.join(out, "vggish_model.ckpt"), os.path.join(out, "vggish_pca_params.npz")
    examples = log_mels()
    embeddings = write_checkpoint_and_run(random_variables(), examples, ckpt)
    rng = np.random.default_rng(3)
    eigen_vectors = np.linalg.qr(rng.normal(size=(128, 128)))[0] * 0.15  # embeddings have std ~7 here
    means = rng.normal(0, 0.1, (128, 1))
    np.savez(pca_path, pca_eigen_vectors=eigen_vectors, pca_means=means)
    np.savez(os.path.join(out, "reference.npz"), examples=examples, embeddings=embeddings,
             postprocessed=reference_postprocess(embeddings, eigen_vectors, means))
    from vggish_jax import cli
    code = cli.main(["convert", "--tf-checkpoint", ckpt, "--pca", pca_path, "--out", os.path.join(out, "converted")])
    if code:
        raise SystemExit(f"vggish-jax convert failed with exit status {code}")
    print(f"TF reference written to {out}: {os.listdir(out)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
