"""The embedding core on folder and CSV sources: labels from subfolders and CSVs, a folder needs no --data-dir,
and the store cases on extract outputs (damaged shard and info.json recomputed, a second writer refused,
moved weights resume, dtype in the identity)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import finished_shards, tone_mix
from vggish_jax import cli, spec as spec_lib
from vggish_jax.pipeline import core, store
from vggish_jax.pipeline.extract import ExtractSettings, extract, load_model
from vggish_jax.pipeline.sources.folder import Folder

BATCH = 2


@pytest.fixture(scope="module")
def genres(tmp_path_factory):
    """GTZAN's layout: genres/<class>/<file>, 1.2-s clips (one example each)."""
    root = tmp_path_factory.mktemp("genres") / "genres"
    for c, (name, n) in enumerate((("blues", 2), ("jazz", 1), ("rock", 3))):
        (root / name).mkdir(parents=True)
        for i in range(n):
            sf.write(root / name / f"{name}.{i:05d}.wav", tone_mix(1.2, 16000, seed=10 * c + i), 16000)
    return root


@pytest.fixture(scope="module")
def embedder(small_weights_dir):
    from vggish_jax.pipeline.embed import load_pretrained
    return load_pretrained(small_weights_dir, batch_size=BATCH)


def _run(source_dir, out, model, weights_dir=None, **kw):
    """The public extract on a folder named by its path (the string spec `open_source` resolves)."""
    settings = ExtractSettings(**{"shard_size": 2, "workers": 0, "progress": False, "batch_size": BATCH,
                                  "weights_dir": weights_dir, "log": lambda m: None, **kw})
    return extract(str(source_dir), str(out), model, settings)


def test_folder_classes_come_from_first_level_subfolders(genres, embedder, tmp_path):
    src = Folder(str(genres))
    assert src.label_names == ["blues", "jazz", "rock"] and src.splits() == {"all": 6}
    assert src.describe().endswith("6 audio files in 3 classes (blues 2, jazz 1, rock 3)")
    lines = []
    summary = _run(genres, tmp_path / "emb", embedder.model, log=lines.append)
    assert any("3 classes (blues 2, jazz 1, rock 3)" in line for line in lines)
    got = store.load_split(str(tmp_path / "emb"), "all")
    assert list(got.labels) == [0, 0, 1, 2, 2, 2] and list(got.track_ids) == list(range(6))
    assert list(got.keys) == [os.path.realpath(genres / p) for p in src.files]
    for k, e in zip(got.keys, got.embeddings):  # the device path on the same file, alone in a smaller batch:
        # XLA:CPU's float32 sums depend on the batch shape (measured up to 1.4e-6 here)
        np.testing.assert_allclose(e, embedder.embed_file(k), rtol=0, atol=1e-5)
    assert summary.num_clips == {"all": 6} and store.read_info(str(tmp_path / "emb"))["label_names"] == \
        ["blues", "jazz", "rock"]
    # A file beside the class folders: no labels, said so.
    mixed = tmp_path / "mixed"
    shutil.copytree(genres, mixed)
    shutil.copy(genres / "jazz" / "jazz.00000.wav", mixed / "loose.wav")
    src = Folder(str(mixed))
    assert src.label_names == [] and set(src.labels) == {-1} and "no class labels" in src.describe()


def test_labels_csv_with_splits_and_groups(genres, embedder, tmp_path):
    rows = [("blues/blues.00000.wav", "blues", "train", "a1"), ("rock/rock.00000.wav", "rock", "train", "a2"),
            ("jazz/jazz.00000.wav", "jazz", "test", "a3"), ("rock/rock.00002.wav", "rock", "test", "a2")]
    csv_path = genres / "labels.csv"
    csv_path.write_text("path,label,split,group\n" + "".join(",".join(r) + "\n" for r in rows))
    out = tmp_path / "emb"
    summary = extract(str(csv_path), str(out), embedder.model,  # a CSV path: the labels source
                      ExtractSettings(shard_size=2, workers=0, progress=False, log=lambda m: None))
    assert summary.num_clips == {"train": 2, "test": 2}
    info = store.read_info(str(out))
    assert info["label_names"] == ["blues", "jazz", "rock"] and info["groups"] == {"train": ["a1", "a2"],
                                                                                   "test": ["a3", "a2"]}
    test = store.load_split(str(out), "test")
    assert list(test.labels) == [1, 2] and list(test.keys) == [str(genres / r[0]) for r in rows[2:]]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,genre\nx.wav,rock\n")
    with pytest.raises(ValueError, match=r"bad.csv: a labels CSV needs a header with columns path,label"):
        extract(str(bad), str(tmp_path / "x"), embedder.model, ExtractSettings(workers=0, progress=False))


def test_cli_extract_of_a_folder_needs_no_data_dir(genres, small_weights_dir, tmp_path, capsys, monkeypatch,
                                                   embedder):
    from vggish_jax.pipeline import extract as ex

    monkeypatch.setattr(ex, "load_model", lambda *a, **k: embedder.model)  # no second load
    out = tmp_path / "emb"
    (tmp_path / "settings.toml").write_text("shard_size = 4\n")
    assert cli.main(["extract", "--dataset", str(genres), "--weights", small_weights_dir, "--out", str(out),
                     "--workers", "0", "--config", str(tmp_path / "settings.toml")]) == 0
    captured = capsys.readouterr()
    assert "3 classes (blues 2, jazz 1, rock 3)" in captured.err and "all=6" in captured.out
    assert store.read_info(str(out))["complete"] is True


def test_damaged_shard_and_info_are_named_and_recomputed(genres, embedder, tmp_path):
    out = tmp_path / "emb"
    _run(genres, out, embedder.model)
    ref = store.load_split(str(out), "all")
    shards = finished_shards(str(out))
    with open(shards[1], "r+b") as f:
        f.truncate(100)
    (out / store.INFO).write_text("{not json")
    kept = {p: os.stat(p).st_mtime_ns for p in (shards[0], shards[2])}
    lines = []
    summary = _run(genres, out, embedder.model, log=lines.append)
    assert summary.computed == {"all": [1]} and summary.reused == {"all": [0, 2]}
    assert any(shards[1] in line and "damaged" in line and "recomputing" in line for line in lines), lines
    assert any(str(out / store.INFO) in line and "damaged" in line for line in lines), lines
    assert {p: os.stat(p).st_mtime_ns for p in kept} == kept
    got = store.load_split(str(out), "all")
    for e, f in zip(got.embeddings, ref.embeddings):
        np.testing.assert_array_equal(e, f)
    assert store.read_info(str(out))["complete"] is True
    # A shard of another job (its identity hash differs) is recomputed, not mixed in.
    z = dict(np.load(shards[0]))
    store.write_shard(shards[0], z["track_ids"], z["labels"], [z["embeddings"][i:i + 1] for i in range(2)],
                      keys=z["keys"], identity="0" * 64)
    again = _run(genres, out, embedder.model)
    assert again.computed == {"all": [0]}


def test_a_second_writer_is_refused_and_moved_weights_resume(genres, small_weights_dir, embedder, tmp_path):
    out = tmp_path / "emb"
    os.makedirs(out)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock-0").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        with pytest.raises(store.StoreError) as e:
            _run(genres, out, embedder.model)
        assert f"pid {holder.pid}" in str(e.value) and "\n" not in str(e.value)
        assert not finished_shards(str(out))
    finally:
        holder.kill()
        holder.wait()
    weights = str(tmp_path / "weights")
    shutil.copytree(small_weights_dir, weights)
    _run(genres, out, load_model(weights), weights)  # the stale lock is taken over
    os.remove(store.shard_path(str(out), "all", 2))
    moved = str(tmp_path / "weights_moved")
    os.rename(weights, moved)
    resumed = _run(genres, out, load_model(moved), moved)
    assert resumed.computed == {"all": [2]} and resumed.complete
    with pytest.raises(spec_lib.SpecMismatch, match=r"dtype: 'bfloat16' \(weights .*\) vs 'float32'"):
        _run(genres, out, load_model(moved, dtype="bfloat16"), moved)


def test_plan_and_shard_identity_do_not_depend_on_paths(genres, tmp_path):
    src = Folder(str(genres))
    moved = tmp_path / "elsewhere"
    shutil.copytree(genres, moved)
    spec = spec_lib.EmbeddingSpec.create(weights_sha256="a" * 64, final_relu=False)
    a = core.Job(str(tmp_path / "a"), src, spec, 2, record={"weights": "/w"})
    b = core.Job(str(tmp_path / "b"), Folder(str(moved)), spec, 2, record={"weights": "/w_moved"})
    assert a.identity_hash == b.identity_hash
    assert core.Job(a.out, src, spec.replace(dtype="bfloat16"), 2).identity_hash != a.identity_hash


class _Stored:
    """A source of embeddings already made (as AudioSet's release is): no model runs."""
    payload, multilabel, label_names = "embedding", True, ["a", "b", "c"]
    spec = spec_lib.EmbeddingSpec.create(weights_sha256="b" * 64, final_relu=False, postprocess=True)

    def __init__(self, n=5):
        rng = np.random.default_rng(0)
        self.rows = [rng.integers(0, 256, (1 + i % 3, 128), dtype=np.uint8) for i in range(n)]
        self.labels = [np.eye(3, dtype=np.uint8)[i % 3] | np.eye(3, dtype=np.uint8)[0] for i in range(n)]

    def identity(self):
        return {"source": "stored", "n": len(self.rows)}

    def splits(self):
        return {"train": 3, "test": len(self.rows) - 3}

    def skipped(self):
        return []

    def clips(self, split, indices):
        from vggish_jax.pipeline.sources import Clip

        for i in indices:
            j = i + (3 if split == "test" else 0)
            yield Clip(i, f"v{j}:0", self.labels[j], data=self.rows[j])


def test_stored_embeddings_pass_through_unchanged_with_multi_hot_labels(tmp_path):
    from vggish_jax.pipeline.extract import run_local

    src, out = _Stored(), str(tmp_path / "emb")
    job = core.Job(out, src, src.spec, 2)
    summary = run_local(job, None, process_index=0, process_count=1, progress=False, log=lambda m: None)
    assert summary.complete and summary.num_clips == {"train": 3, "test": 2}
    for split, offset in (("train", 0), ("test", 3)):
        got = store.load_split(out, split)
        assert got.labels.dtype == np.uint8 and got.labels.shape == (len(got), 3)
        for i, (e, y) in enumerate(zip(got.embeddings, got.labels)):
            np.testing.assert_array_equal(e, src.rows[offset + i])
            np.testing.assert_array_equal(y, src.labels[offset + i])
        assert list(got.keys) == [f"v{offset + i}:0" for i in range(len(got))]
    info = store.read_info(out)
    assert info["multilabel"] is True and spec_lib.read(info, out) == src.spec
    again = run_local(job, None, process_index=0, process_count=1, progress=False, log=lambda m: None)
    assert again.computed == {"train": [], "test": []} and again.reused == {"train": [0, 1], "test": [0]}


@pytest.mark.parametrize("error, kind", [
    ("unreadable", "unreadable"), ("truncated", "truncated"), ("silent", "silent"), ("too_short", "too_short"),
    ("waveform", "invalid"), ("waveform_short", "too_short"), ("no_such_file", "missing"),
    ("says_permission_denied", "undecodable"),  # the kind is the error's class, never read from its text
])
def test_skip_kinds_come_from_the_error_not_its_text(tmp_path, error, kind):
    from vggish_jax import audio
    from vggish_jax.models.vggish import frontend
    from vggish_jax.pipeline import host, waveform

    path = tmp_path / "x.wav"
    path.write_bytes(b"not audio")
    e = {"unreadable": audio.UnreadableError("x: is a FIFO"), "truncated": audio.TruncatedError("x: cut"),
         "silent": audio.SilentAudioError("x: silent"), "too_short": frontend.TooShortError("x: short"),
         "waveform": waveform.WaveformError("bad shape"), "waveform_short": waveform.WaveformTooShort("short"),
         "no_such_file": audio.AudioError("decoder failed"),
         "says_permission_denied": audio.AudioError("x: permission denied, no such file, shorter than one")}[error]
    where = str(tmp_path / "gone.wav") if error == "no_such_file" else str(path)
    s = host.skip_of(where, e)
    assert (s.kind, s.path, s.reason) == (kind, where, str(e))
    assert host.skip_of("fma:3", audio.AudioError("corrupt block"), on_disk=False).kind == "undecodable"
