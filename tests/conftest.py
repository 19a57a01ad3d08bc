"""Shared fixtures: small generated audio and saved random-weights VGGish directories (full size and small)."""
from __future__ import annotations

import glob
import importlib
import os
import time

import numpy as np
import pytest
import soundfile as sf

from vggish_jax import compilation_cache

# Compiled programs persist across test processes and runs (VGGISH_JAX_CACHE_DIR=off turns it off); tests
# run with the CLI's XLA:CPU settings.
compilation_cache.enable()
compilation_cache.apply_xla_flags()


INSTALL_TEST_EXTRA = 'pip install -e ".[test]"'


def require(module: str, why: str):
    """Import an oracle package of the test extra (torch, torchvggish, resampy, apache_beam); a missing one
    fails the tests that need it with the install line, instead of skipping them unseen."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.fail(f"{module} is missing ({e}); {why}: install the test extra with {INSTALL_TEST_EXTRA}",
                    pytrace=False)


def tone_mix(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A chirp + tone + a little noise, [samples] or [samples, channels], float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    chirp = np.sin(2 * np.pi * (100 * t + 0.5 * (3000 / max(seconds, 1e-3)) * t * t))
    x = 0.4 * chirp + 0.2 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
    if channels == 1:
        return x.astype(np.float32)
    return np.stack([x * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


def settings_toml(folder, text: str, name: str = "settings.toml") -> str:
    """A `--config` file in `folder` holding `text` (TOML); its path."""
    path = os.path.join(os.fspath(folder), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def finished_shards(out: str) -> list[str]:
    """Embedding shards on disk under an extraction's OUT (temporary files of writes in flight left out)."""
    return sorted(p for p in glob.glob(os.path.join(out, "*", "shard-*.npz")) if ".tmp" not in p)


def kill_after_first_shard(proc, out: str, kill, timeout: float) -> list[str]:
    """Wait until `proc` has finished a shard under `out` (or exited, or `timeout` s passed), `kill(proc)`,
    reap it, and return the shards that were finished at the kill."""
    deadline = time.time() + timeout
    while not finished_shards(out) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    kill(proc)
    proc.wait()
    return finished_shards(out)


_SOURCE_KEYS = ("data_dir", "manual_dir", "from_audio", "download", "labels", "task", "classes", "split")


def run_extract(dataset, *, out, weights=None, final_relu=None, dtype="float32", precision="float32",
                beam_runner=None, beam_workers=2, beam_options=None, **kw):
    """`vggish_jax.extract(source, out, model, settings)` from the keywords the extraction tests vary: the
    source by `pipeline.extract.open_source`, the model a VGGish module, a weights directory (loaded by
    `load_model`) or None, everything else ExtractSettings (frontend_precision = `precision`)."""
    import vggish_jax
    from vggish_jax.pipeline import extract as ex

    opened = {k: kw.pop(k) for k in _SOURCE_KEYS if k in kw}
    if isinstance(weights, (str, os.PathLike)):
        weights_dir = os.fspath(weights)
        model = ex.load_model(weights_dir, final_relu=final_relu, dtype=dtype, postprocess=kw.get("postprocess", False))
    else:
        weights_dir, model = None, weights
    beam = None
    if beam_runner or beam_options:  # the Beam run, and an FMA dataset built with Beam, as the CLI does
        from vggish_jax.pipeline import beam_runner as runners

        beam = ex.BeamSettings(beam_runner, beam_workers, beam_options)
        runner, options = runners.make(beam_runner, beam_workers, beam_options)
        opened.update(beam_runner=runner, beam_options=options)
    source = ex.open_source(dataset, **opened)
    settings = vggish_jax.ExtractSettings(weights_dir=weights_dir, frontend_precision=precision, beam=beam, **kw)
    return vggish_jax.extract(source, out, model, settings)


@pytest.fixture(scope="session")
def random_weights_dir(tmp_path_factory):
    from vggish_jax.models.vggish import modeling, params

    d = tmp_path_factory.mktemp("weights")
    params.save(d, modeling.random(0), metadata={"source": "random", "seed": 0})
    return str(d)


SMALL_WIDTH_DIVISOR = 8  # a VGGish with every hidden width / 8: same layers and shapes in and out, ~1/60 the FLOPs


@pytest.fixture(scope="session")
def small_weights_dir(tmp_path_factory):
    """A converted small same-shaped VGGish (width_divisor 8, random weights) with random orthonormal PCA
    params: what pipeline and CLI tests use instead of the 72M-parameter model."""
    from vggish_jax.models.vggish import modeling, params, postprocess

    rng = np.random.default_rng(0)
    eigen_vectors = np.linalg.qr(rng.standard_normal((128, 128)))[0]
    pca = postprocess.PCAParams(eigen_vectors, 0.1 * rng.standard_normal(128))
    d = tmp_path_factory.mktemp("small_weights")
    params.save(d, modeling.random(0, width_divisor=SMALL_WIDTH_DIVISOR), pca=pca,
                    metadata={"source": "random", "seed": 0})
    return str(d)


@pytest.fixture(scope="session")
def audio_files(tmp_path_factory):
    """Generated files: 3.2 s stereo 44.1 kHz as wav/flac/mp3/ogg, a 2 s 22.05 kHz mono wav, and bad files."""
    d = tmp_path_factory.mktemp("audio")
    x = tone_mix(3.2, 44100, channels=2)
    files = {}
    for ext in ("wav", "flac", "mp3", "ogg"):
        files[ext] = str(d / f"clip.{ext}")
        sf.write(files[ext], x, 44100)
    files["mono22k"] = str(d / "mono22k.wav")
    sf.write(files["mono22k"], tone_mix(2.0, 22050), 22050)
    files["short"] = str(d / "short.wav")
    sf.write(files["short"], tone_mix(0.5, 16000), 16000)
    files["empty"] = str(d / "empty.mp3")
    open(files["empty"], "wb").close()
    files["corrupt"] = str(d / "corrupt.mp3")
    with open(files["corrupt"], "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    files["nan"] = str(d / "nan.wav")
    y = tone_mix(2.0, 16000)
    y[5000] = np.nan
    sf.write(files["nan"], y, 16000, subtype="FLOAT")
    files["missing"] = str(d / "does_not_exist.wav")
    return files


@pytest.fixture(scope="module")
def pca_weights_dir(tmp_path_factory, random_weights_dir):
    """Random VGGish weights + PCA params that spread this model's embeddings over the uint8 range."""
    from vggish_jax import audio
    from vggish_jax.models.vggish import frontend, modeling, params as checkpoint, postprocess as post
    from vggish_jax.pipeline.embed import load_pretrained
    from vggish_jax.predict import EXAMPLE_CLIP

    emb = load_pretrained(random_weights_dir).embed_examples(
        frontend.waveform_to_examples(*audio.load(EXAMPLE_CLIP)))
    pca = post.PCAParams(np.diag(1.0 / (emb.std(0) + 1e-3)), emb.mean(0))
    d = tmp_path_factory.mktemp("pca_weights")
    checkpoint.save(d, modeling.random(0), pca=pca, metadata={"source": "random", "final_relu": False})
    return str(d)


# ---- the summary names the slow tests a run left out, and how to run them ----

SLOW_COMMAND = "python -m pytest -n 2 -q -m slow"
_slow_left_out: set[str] = set()


def pytest_deselected(items):
    _slow_left_out.update(item.nodeid for item in items if item.get_closest_marker("slow"))


def pytest_sessionfinish(session):
    # An xdist worker deselects for itself: hand the count to the controller (pytest_testnodedown below).
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["slow_left_out"] = sorted(_slow_left_out)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _slow_left_out.update(getattr(node, "workeroutput", {}).get("slow_left_out", ()))


# ---- ... and the TensorFlow parity tests it skipped (their fixture needs a TF venv that .ci/run builds) ----

TF_PARITY_FILE = "test_convert_tf.py"
_tf_skipped: dict[str, str] = {}  # nodeid -> skip reason; xdist replays workers' reports here


def pytest_runtest_logreport(report):
    if report.skipped and report.nodeid.split("::")[0].endswith(TF_PARITY_FILE):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _tf_skipped[report.nodeid] = reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter):
    if _slow_left_out:
        n = len(_slow_left_out)
        terminalreporter.write_line(f"{n} slow test{'s' * (n != 1)} not run (deselected by -m 'not slow'); "
                                    f"run them with: {SLOW_COMMAND}")
    if _tf_skipped:
        n = len(_tf_skipped)
        terminalreporter.write_line(f"{n} TensorFlow parity test{'s' * (n != 1)} skipped: "
                                    f"{sorted(_tf_skipped.values())[0]}", yellow=True)
