"""`vggish-jax embed` keeps finished files through SIGKILL, SIGTERM, Ctrl-C and errors, and a rerun resumes;
the store behind it: keys by resolved path + size/mtime, one writer, damaged files recomputed, dtype identity."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from vggish_jax import cli
from vggish_jax.pipeline import store
from vggish_jax.pipeline.npz_output import out_paths
from conftest import settings_toml, tone_mix


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    d = tmp_path_factory.mktemp("songs")
    paths = []
    for i in range(12):
        paths.append(str(d / f"song{i:02d}.wav"))
        sf.write(paths[-1], tone_mix(3.2 + 0.5 * i, 22050, seed=i), 22050)
    return paths


@pytest.fixture(scope="module")
def embedder(small_weights_dir):
    from vggish_jax.pipeline.embed import load_pretrained
    return load_pretrained(small_weights_dir, batch_size=4)


@pytest.fixture
def reuse_embedder(embedder, monkeypatch):
    """In-process runs share one loaded, compiled model (loading and compiling dominate these tests)."""
    from vggish_jax.pipeline import embed
    monkeypatch.setattr(embed, "load_pretrained", lambda *a, **k: embedder)


def _out(tmp_path, name: str) -> str:
    """The OUT/embeddings.npz that `embed --out OUT` writes (OUT = tmp_path/name)."""
    return str(tmp_path / name / "embeddings.npz")


def _embed_cmd(songs, weights, npz, *extra):
    """`embed` into the folder of `npz`, one file per shard (flush_every = 1, from a settings file beside it)."""
    folder = os.path.dirname(npz)
    settings = folder + ".settings.toml"
    with open(settings, "w") as f:
        f.write("flush_every = 1\n")
    return ["embed", *songs, "--weights", weights, "--out", folder, "--batch-size", "4", "--config", settings, *extra]


def _shards(out):
    return sorted(p for p in glob.glob(os.path.join(out_paths(out)[2], "*", "shard-*.npz")) if ".tmp" not in p)


def test_ctrl_c_and_errors_keep_finished_files(songs, small_weights_dir, embedder, reuse_embedder, tmp_path,
                                               monkeypatch, capsys):
    real = type(embedder).iter_files
    for exc, code in ((KeyboardInterrupt, 130), (RuntimeError("disk on fire"), 2)):
        calls = []

        def stop_on_the_third_file(self, *a, **k):  # flush_every = 1: one file per shard, one call per shard
            calls.append(1)
            if len(calls) == 3:
                raise exc
            yield from real(self, *a, **k)

        monkeypatch.setattr(type(embedder), "iter_files", stop_on_the_third_file)
        out = _out(tmp_path, str(code))
        assert cli.main(_embed_cmd(songs[:4], small_weights_dir, out)) == code
        with np.load(out) as z:
            assert z.files == songs[:2]
        assert json.load(open(str(out)[:-4] + ".json"))["complete"] is False
        monkeypatch.setattr(type(embedder), "iter_files", real)
        assert cli.main(_embed_cmd(songs[:4], small_weights_dir, str(out))) == 0
        assert "2 of 4 files already in" in capsys.readouterr().err
        with np.load(out) as z:
            assert z.files == songs[:4]
        meta = json.load(open(str(out)[:-4] + ".json"))
        assert meta["complete"] is True and meta["hop_s"] == pytest.approx(0.96)
        with np.load(out) as z:  # every row has its start time
            assert all(meta["start_s"][k] == pytest.approx(np.arange(z[k].shape[0]) * 0.96) for k in songs[:4])


def test_keys_are_resolved_paths_and_a_changed_file_is_embedded_again(embedder, small_weights_dir,
                                                                     reuse_embedder, tmp_path, monkeypatch, capsys):
    """`cd a && embed song.wav` then `cd b && embed song.wav` are two files; a rewritten file is not kept stale."""
    for name, seed in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "song.wav", tone_mix(1.2, 16000, seed=seed), 16000)
    out = _out(tmp_path, "o")
    for name in ("a", "b"):
        monkeypatch.chdir(tmp_path / name)
        assert cli.main(_embed_cmd(["song.wav"], small_weights_dir, out)) == 0
    a, b = str(tmp_path / "a" / "song.wav"), str(tmp_path / "b" / "song.wav")
    with np.load(out) as z:
        assert z.files == [b, a]  # this run's file first, then what the output held
        np.testing.assert_array_equal(z[a], embedder.embed_file(a))
        np.testing.assert_array_equal(z[b], embedder.embed_file(b))
        old_b = z[b]
    capsys.readouterr()
    sf.write(b, tone_mix(1.2, 16000, seed=3), 16000)  # same path, new content
    assert cli.main(_embed_cmd(["song.wav"], small_weights_dir, out)) == 0
    assert "already in" not in capsys.readouterr().err
    with np.load(out) as z:
        assert sorted(z.files) == sorted([a, b])
        np.testing.assert_array_equal(z[b], embedder.embed_file(b))
        assert not np.array_equal(z[b], old_b)
    assert cli.main(_embed_cmd(["song.wav"], small_weights_dir, out)) == 0  # unchanged now: kept
    assert "1 of 1 files already in" in capsys.readouterr().err


def test_a_second_writer_is_refused_naming_the_holder_and_a_stale_lock_is_taken_over(
        songs, small_weights_dir, reuse_embedder, tmp_path, capsys):
    out = _out(tmp_path, "o")
    root = out_paths(out)[2]
    os.makedirs(root)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        with open(os.path.join(root, ".lock-0"), "w") as f:
            json.dump({"pid": holder.pid, "host": socket.gethostname()}, f)
        assert cli.main(_embed_cmd(songs[:1], small_weights_dir, out)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {holder.pid}" in err[0] and out in err[0] and "Traceback" not in err[0]
        assert not os.path.exists(out) and not _shards(out)  # refused before any work
    finally:
        holder.kill()
        holder.wait()
    # The holder is dead now: its lock is stale and taken over.
    assert cli.main(_embed_cmd(songs[:1], small_weights_dir, out)) == 0
    with np.load(out) as z:
        assert z.files == songs[:1]
    assert not os.path.exists(os.path.join(root, ".lock-0"))  # released at the end


def test_damaged_output_shard_and_info_are_named_and_recomputed(songs, small_weights_dir, embedder,
                                                                reuse_embedder, tmp_path, capsys):
    out = _out(tmp_path, "o")
    assert cli.main(_embed_cmd(songs[:3], small_weights_dir, out)) == 0
    with np.load(out) as z:
        ref = {k: z[k] for k in z.files}
    shards = _shards(out)
    assert len(shards) == 3
    root = out_paths(out)[2]
    capsys.readouterr()
    # A truncated OUT.npz, a truncated shard and an info.json that is not JSON.
    with open(out, "r+b") as f:
        f.truncate(os.path.getsize(out) // 2)
    with open(shards[1], "r+b") as f:
        f.truncate(os.path.getsize(shards[1]) // 2)
    with open(os.path.join(root, store.INFO), "w") as f:
        f.write('{"complete": tr')
    kept = {p: os.stat(p).st_mtime_ns for p in (shards[0], shards[2])}
    assert cli.main(_embed_cmd(songs[:3], small_weights_dir, out)) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert any(shards[1] in line and "damaged" in line for line in err.splitlines()), err
    assert any(os.path.join(root, store.INFO) in line and "damaged" in line for line in err.splitlines()), err
    assert any(out in line and "damaged" in line for line in err.splitlines()), err
    assert "2 of 3 files already in" in err  # the two good shards were kept, the damaged one recomputed
    assert {p: os.stat(p).st_mtime_ns for p in kept} == kept
    with np.load(out) as z:
        assert z.files == songs[:3]
        for k in songs[:3]:
            np.testing.assert_array_equal(z[k], ref[k])
    assert store.read_info(root)["complete"] is True


def test_dtype_is_part_of_the_identity(songs, small_weights_dir, embedder, tmp_path, monkeypatch, capsys):
    from vggish_jax.pipeline import embed

    out = _out(tmp_path, "o")
    monkeypatch.setattr(embed, "load_pretrained", lambda *a, **k: embedder)
    assert cli.main(_embed_cmd(songs[:1], small_weights_dir, out)) == 0
    monkeypatch.undo()  # a real bfloat16 model: refused before it embeds anything
    capsys.readouterr()
    bfloat16 = settings_toml(tmp_path, 'dtype = "bfloat16"\n')
    assert cli.main(_embed_cmd(songs[1:2], small_weights_dir, out, "--config", bfloat16)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and out in err[0] and "dtype: 'bfloat16'" in err[0] and "'float32'" in err[0], err
    with np.load(out) as z:
        assert z.files == songs[:1]


def _start(argv):
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "vggish_jax.cli", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_after_first_shard(proc, out, sig):
    """Send `sig` once this run has written a shard of its own."""
    before, deadline = len(_shards(out)), time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_shards(out)) > before:
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    return proc.wait(120)


@pytest.mark.slow  # three real runs (two of them fresh processes that load and compile the model)
def test_sigkill_then_sigterm_then_finish_equals_one_run(songs, small_weights_dir, reuse_embedder, tmp_path, capsys):
    out = _out(tmp_path, "o")
    # SIGKILL once the first shard is on disk: no cleanup runs, the shards stay.
    proc = _start(_embed_cmd(songs, small_weights_dir, out))
    assert _kill_after_first_shard(proc, out, signal.SIGKILL) == -signal.SIGKILL
    assert not os.path.exists(out) and _shards(out)
    # SIGTERM on the rerun: it resumes, then builds OUT.npz from what it has before exiting.
    proc = _start(_embed_cmd(songs, small_weights_dir, out))
    code = _kill_after_first_shard(proc, out, signal.SIGTERM)
    err = proc.stderr.read()
    assert "Traceback" not in err
    assert code == 143 and "terminated; finished work is kept" in err  # 10+ files were still to do
    assert json.load(open(out[:-4] + ".json"))["complete"] is False
    assert "already in" in err and os.path.exists(out)
    # The third run completes it; the result equals one uninterrupted run.
    assert cli.main(_embed_cmd(songs, small_weights_dir, out)) == 0
    ref = _out(tmp_path, "ref")
    assert cli.main(_embed_cmd(songs, small_weights_dir, ref)) == 0
    with np.load(out) as a, np.load(ref) as b:
        assert sorted(a.files) == sorted(b.files) == sorted(songs)
        for k in songs:
            np.testing.assert_allclose(a[k], b[k], atol=1e-5)
    assert json.load(open(out[:-4] + ".json"))["complete"] is True


def test_an_output_from_before_the_store_keeps_its_files(songs, small_weights_dir, embedder, reuse_embedder,
                                                          tmp_path, capsys):
    """OUT.npz + OUT.json of an older vggish-jax (no OUT.store): its files stay; files asked for again are
    embedded again (their size and mtime were never recorded)."""
    from vggish_jax import spec as spec_lib

    out = _out(tmp_path, "old")
    os.makedirs(os.path.dirname(out))
    gone = np.full((2, 128), 7, np.float32)
    np.savez(out, **{"/music/gone.wav": gone, songs[0]: np.zeros((1, 128), np.float32)})
    with open(out[:-4] + ".json", "w") as f:
        json.dump({spec_lib.KEY: embedder.spec.to_dict(), "complete": True}, f)
    assert cli.main(_embed_cmd(songs[:2], small_weights_dir, out)) == 0
    with np.load(out) as z:
        assert z.files == [songs[0], songs[1], "/music/gone.wav"]
        np.testing.assert_array_equal(z["/music/gone.wav"], gone)
        np.testing.assert_array_equal(z[songs[0]], embedder.embed_file(songs[0]))
    # One made with other settings is refused, naming it, and left as it was.
    other = _out(tmp_path, "other")
    os.makedirs(os.path.dirname(other))
    np.savez(other, **{songs[0]: np.zeros((1, 128), np.float32)})
    with open(other[:-4] + ".json", "w") as f:
        json.dump({spec_lib.KEY: embedder.spec.replace(final_relu=True).to_dict()}, f)
    capsys.readouterr()
    assert cli.main(_embed_cmd(songs[:1], small_weights_dir, other)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and other in err[0] and "final_relu" in err[0]
    with np.load(other) as z:
        assert z.files == [songs[0]] and not z[songs[0]].any()


@pytest.mark.slow  # two real processes that each load and compile the model
def test_two_concurrent_writers_lose_no_file(songs, small_weights_dir, tmp_path):
    """Issue 18's reproduction: two `embed` runs on two halves of a folder into one --out at once. The second
    is refused while the first holds the store (one line naming its pid), or runs after it; after rerunning
    whichever was refused, the output holds every file of both halves."""
    out = _out(tmp_path, "o")
    halves = (songs[:6], songs[6:])
    procs = [_start(_embed_cmd(h, small_weights_dir, out)) for h in halves]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    for (code, err), half in zip(results, halves):
        assert "Traceback" not in err
        if code != 0:
            lines = [line for line in err.splitlines() if "error" in line]
            assert code == 2 and len(lines) == 1 and "another run is writing it (pid" in lines[0], err
            assert cli.main(_embed_cmd(half, small_weights_dir, out)) == 0
    with np.load(out) as z:
        assert sorted(z.files) == sorted(songs)
