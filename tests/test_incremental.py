"""`vggish-jax embed` keeps finished files through SIGKILL, SIGTERM, Ctrl-C and errors, and a rerun resumes."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from vggish_jax import cli, spec as spec_lib
from vggish_jax.pipeline import incremental
from conftest import tone_mix

SPEC = spec_lib.EmbeddingSpec.create(weights_sha256="a" * 64, final_relu=False)


def test_parts_survive_a_crash_and_merge_on_the_next_run(tmp_path):
    out = str(tmp_path / "o.npz")
    arrays = {f"/music/{i}.wav": np.full((i + 1, 128), i, np.float32) for i in range(5)}
    first = incremental.EmbeddingOutput(out, SPEC, flush_every=2)
    for k in list(arrays)[:3]:
        first.add(k, arrays[k])
    first.add("/music/bad.wav", "/music/bad.wav: corrupt; drop it")
    # the process dies here: 2 files are in a part, the third was never flushed
    assert sorted(os.listdir(out + ".parts")) == ["manifest.json", "part-00000.npz"]
    second = incremental.EmbeddingOutput(out, SPEC, flush_every=2)
    assert second.todo(list(arrays)) == list(arrays)[2:]
    for k in second.todo(list(arrays)):
        second.add(k, arrays[k])
    assert second.finish(list(arrays), complete=True) == 5
    assert not os.path.exists(out + ".parts")
    with np.load(out) as z:
        assert z.files == list(arrays)
        for k, v in arrays.items():
            np.testing.assert_array_equal(z[k], v)
    meta = json.load(open(tmp_path / "o.json"))
    assert meta["complete"] is True and spec_lib.read(meta, "o.json") == SPEC
    # A run with other settings is refused, whether it meets parts or a finished output.
    other = SPEC.replace(final_relu=True)
    with pytest.raises(spec_lib.SpecMismatch, match="final_relu"):
        incremental.EmbeddingOutput(out, other)
    third = incremental.EmbeddingOutput(out, SPEC, flush_every=1)
    third.add("/music/new.wav", np.ones((1, 128), np.float32))
    with pytest.raises(spec_lib.SpecMismatch, match="final_relu"):
        incremental.EmbeddingOutput(out, other)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    d = tmp_path_factory.mktemp("songs")
    paths = []
    for i in range(12):
        paths.append(str(d / f"song{i:02d}.wav"))
        sf.write(paths[-1], tone_mix(3.2 + 0.5 * i, 22050, seed=i), 22050)
    return paths


@pytest.fixture(scope="module")
def embedder(random_weights_dir):
    from vggish_jax.pipeline.embed import load_pretrained
    return load_pretrained(random_weights_dir, batch_size=4)


@pytest.fixture
def reuse_embedder(embedder, monkeypatch):
    """In-process runs share one loaded, compiled model (loading and compiling dominate these tests)."""
    from vggish_jax.pipeline import embed
    monkeypatch.setattr(embed, "load_pretrained", lambda *a, **k: embedder)


def _embed_cmd(songs, weights, out):
    return ["embed", *songs, "--weights", weights, "--out", out, "--batch-size", "4", "--flush-every", "1"]


def test_ctrl_c_and_errors_keep_finished_files(songs, random_weights_dir, reuse_embedder, tmp_path, monkeypatch,
                                               capsys):
    real = incremental.iter_embeddings
    for exc, code in ((KeyboardInterrupt, 130), (RuntimeError("disk on fire"), 2)):
        def stop_after_two(*a, **k):
            for i, item in enumerate(real(*a, **k)):
                if i == 2:
                    raise exc
                yield item

        monkeypatch.setattr(incremental, "iter_embeddings", stop_after_two)
        out = tmp_path / f"{code}.npz"
        assert cli.main(_embed_cmd(songs[:4], random_weights_dir, str(out))) == code
        with np.load(out) as z:
            assert z.files == songs[:2]
        assert json.load(open(str(out)[:-4] + ".json"))["complete"] is False
        monkeypatch.setattr(incremental, "iter_embeddings", real)
        assert cli.main(_embed_cmd(songs[:4], random_weights_dir, str(out))) == 0
        assert "2 of 4 files already in" in capsys.readouterr().err
        with np.load(out) as z:
            assert z.files == songs[:4]


def _start(argv):
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "vggish_jax.cli", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_after_first_part(proc, parts, sig):
    """Send `sig` once this run has written a part of its own."""
    def count():
        if not os.path.isdir(parts):
            return 0
        return sum(n.startswith("part-") and n.endswith(".npz") for n in os.listdir(parts))

    before, deadline = count(), time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if count() > before:
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    return proc.wait(120)


@pytest.mark.slow  # three real runs (two of them fresh processes that load and compile the model)
def test_sigkill_then_sigterm_then_finish_equals_one_run(songs, random_weights_dir, reuse_embedder, tmp_path, capsys):
    out = str(tmp_path / "o.npz")
    parts = out + ".parts"
    # SIGKILL once the first part is on disk: no cleanup runs, the parts stay.
    proc = _start(_embed_cmd(songs, random_weights_dir, out))
    assert _kill_after_first_part(proc, parts, signal.SIGKILL) == -signal.SIGKILL
    assert not os.path.exists(out) and os.path.isdir(parts)
    # SIGTERM on the rerun: it resumes, then merges what it has into OUT.npz before exiting.
    proc = _start(_embed_cmd(songs, random_weights_dir, out))
    code = _kill_after_first_part(proc, parts, signal.SIGTERM)
    err = proc.stderr.read()
    assert "Traceback" not in err
    assert code == 143 and "terminated; finished work is kept" in err  # 10+ files were still to do
    assert json.load(open(out[:-4] + ".json"))["complete"] is False
    assert "already in" in err and os.path.exists(out) and not os.path.exists(parts)
    # The third run completes it; the result equals one uninterrupted run.
    assert cli.main(_embed_cmd(songs, random_weights_dir, out)) == 0
    ref = str(tmp_path / "ref.npz")
    assert cli.main(_embed_cmd(songs, random_weights_dir, ref)) == 0
    with np.load(out) as a, np.load(ref) as b:
        assert sorted(a.files) == sorted(b.files) == sorted(songs)
        for k in songs:
            np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    assert json.load(open(out[:-4] + ".json"))["complete"] is True
