"""Apache Beam paths on the mini-FMA, with 2 local worker processes and TensorFlow made unimportable:
the Beam-built dataset and the Beam extraction equal the single-process ones; a SIGKILLed Beam extraction
resumes to the same result; a plain folder of audio files; runner/option parsing."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import finished_shards, kill_after_first_shard, require

require("apache_beam", "Beam runs the pipeline under test (the beam extra, in the test extra)")
from mini_fma import make_mini_fma  # noqa: E402
from vggish_jax.pipeline import store  # noqa: E402
from vggish_jax.pipeline import beam_extract, beam_runner, core  # noqa: E402
from conftest import run_extract  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLITS = ("train", "validation", "test")
GENRES = ("Folk", "Hip-Hop", "Rock")  # 3 clips per split: 2 shards of 2 per split
BATCH, SHARD = 2, 2
NO_TF = """\
import os, traceback
_d = os.environ.get("NO_TF_MARKERS")
if _d:  # record who tried, then refuse
    with open(os.path.join(_d, "tensorflow-import-%d.txt" % os.getpid()), "w") as f:
        f.write("".join(traceback.format_stack()))
raise ImportError("tensorflow is blocked in this test: the Beam paths must not need it")
"""


@pytest.fixture(scope="module")
def no_tf(tmp_path_factory):
    """An environment in which `import tensorflow` fails and leaves a marker file (Beam workers inherit it)."""
    root = tmp_path_factory.mktemp("no_tf")
    (root / "stub" / "tensorflow").mkdir(parents=True)
    (root / "stub" / "tensorflow" / "__init__.py").write_text(NO_TF)
    markers = root / "markers"
    markers.mkdir()
    env = dict(os.environ, NO_TF_MARKERS=str(markers),
               PYTHONPATH=os.pathsep.join([str(root / "stub"), REPO, os.environ.get("PYTHONPATH", "")]))
    return env, markers


def _cli(*args):
    return [sys.executable, "-m", "vggish_jax.cli", "extract", *args]


def _settings(folder, text: str) -> str:
    """A --config file in `folder` holding `text` (TOML lines)."""
    path = os.path.join(str(folder), "settings.toml")
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_mini_fma(tmp_path_factory.mktemp("beam_fma") / "manual", per_genre_per_split=1, seconds=1.2,
                         seed=1, genres=GENRES)


@pytest.fixture(scope="module")
def single(mini, small_weights_dir, tmp_path_factory):
    """The single-process build (in this process, no decode pool) and extraction."""
    from vggish_jax.datasets import fma

    root = tmp_path_factory.mktemp("beam_single")
    data_dir, out = str(root / "data"), str(root / "emb")
    fma.prepare("fma/small", data_dir=data_dir, manual_dir=mini.manual_dir, workers=0)
    run_extract("fma/small", data_dir=data_dir, out=out, weights=small_weights_dir, batch_size=BATCH, shard_size=SHARD,
                workers=0, progress=False)
    return data_dir, out


@pytest.fixture(scope="module")
def single_audio(mini, small_weights_dir, tmp_path_factory):
    """The single-process from_audio extraction (device frontend on the decoded mp3s, float32)."""
    root = tmp_path_factory.mktemp("beam_single_audio")
    out = str(root / "emb")
    run_extract("fma/small", data_dir=str(root / "data"), manual_dir=mini.manual_dir, out=out,
                weights=small_weights_dir, batch_size=BATCH, shard_size=SHARD, workers=0, from_audio=True,
                progress=False)
    return out


@pytest.fixture(scope="module")
def beam_cli(mini, small_weights_dir, no_tf, tmp_path_factory):
    """`vggish-jax extract --beam-options="--runner=direct --direct_num_workers=2"` from nothing: Beam build, then
    Beam extraction."""
    env, _ = no_tf
    root = tmp_path_factory.mktemp("beam_cli")
    data_dir, out = str(root / "data"), str(root / "emb")
    proc = subprocess.run(_cli("--dataset", "fma/small", "--data-dir", data_dir, "--manual-dir", mini.manual_dir,
                               "--weights", small_weights_dir, "--out", out, "--batch-size", str(BATCH),
                               "--config", _settings(root, f"shard_size = {SHARD}"),
                               "--beam-options=--runner=direct --direct_num_workers=2"),
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data_dir, out, proc.stderr


def _records(data_dir):
    from vggish_jax.datasets import fma

    b = fma.builder("fma/small", data_dir=data_dir)
    rows = {s: [ds[i] for i in range(len(ds))] for s, ds in fma.data_sources(b).items()}
    return b, rows


def _assert_same_embeddings(a, b, atol):
    for split in SPLITS:
        x, y = store.load_split(a, split), store.load_split(b, split)
        np.testing.assert_array_equal(x.track_ids, y.track_ids)
        np.testing.assert_array_equal(x.labels, y.labels)
        assert len(x.embeddings) == len(y.embeddings) == 3
        for e, f in zip(x.embeddings, y.embeddings):
            assert e.shape == f.shape and e.dtype == f.dtype
            np.testing.assert_allclose(e, f, rtol=0, atol=atol)


@pytest.mark.slow
def test_beam_build_has_the_single_process_records(beam_cli, single, mini):
    from vggish_jax.datasets import fma

    b, rows = _records(beam_cli[0])
    ref, ref_rows = _records(single[0])
    assert set(rows) == set(SPLITS)
    for split in SPLITS:
        assert [int(r["track_id"]) for r in rows[split]] == mini.expected_ids(split)
        assert len(rows[split]) == len(ref_rows[split])
        for r, q in zip(rows[split], ref_rows[split]):
            assert int(r["track_id"]) == int(q["track_id"]) and int(r["label"]) == int(q["label"])
            np.testing.assert_array_equal(r["mel"], q["mel"])  # same decode, bit for bit
    assert fma.skip_report(b) == fma.skip_report(ref)  # same clips, reasons and order
    assert {r["track_id"] for r in fma.skip_report(b)} == set(mini.bad)
    assert b.info.metadata["kept_counts"] == ref.info.metadata["kept_counts"] == {s: 3 for s in SPLITS}
    assert "fma: Beam counters {'fma:clips_decoded': 9, 'fma:clips_skipped': 2}" in beam_cli[2]


@pytest.mark.slow
def test_beam_extraction_matches_single_process(beam_cli, single):
    _, out, stderr = beam_cli
    _assert_same_embeddings(out, single[1], atol=1e-6)
    info, ref = store.read_info(out), store.read_info(single[1])
    assert info["complete"] is True and info["source"] == "tfds"
    for key in ref:  # everything the single-process run records, Beam records the same
        assert info[key] == ref[key], key
    assert info["embedding_spec"]["weights_sha256"] == ref["weights_metadata"]["weights_sha256"]
    assert info["source_identity"] == {"source": "tfds", "dataset": "fma/small"}
    assert "vggish_jax:clips_embedded': 9" in stderr and "vggish_jax:shards_written': 6" in stderr


@pytest.mark.slow
def test_tensorflow_was_never_imported(beam_cli, no_tf, tmp_path):
    env, markers = no_tf
    assert beam_cli  # the Beam build + extraction ran (driver and both workers) with the blocking stub
    assert os.listdir(markers) == [], (markers / os.listdir(markers)[0]).read_text()
    # The stub does block: importing tensorflow with this environment fails and leaves a marker.
    control = tmp_path / "control"
    control.mkdir()
    proc = subprocess.run([sys.executable, "-c", "import tensorflow"], env=dict(env, NO_TF_MARKERS=str(control)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "tensorflow is blocked" in proc.stderr
    assert len(os.listdir(control)) == 1


@pytest.mark.slow
def test_killed_beam_extraction_resumes_to_the_same_result(beam_cli, single_audio, mini, small_weights_dir, no_tf,
                                                          tmp_path):
    """from_audio: the workers decode the mp3s; kill the driver and its workers (SIGKILL), rerun."""
    env, markers = no_tf
    data_dir, out = beam_cli[0], str(tmp_path / "emb")
    args = _cli("--dataset", "fma/small", "--data-dir", data_dir, "--manual-dir", mini.manual_dir,
                "--config", _settings(tmp_path, f"from_audio = true\nshard_size = {SHARD}"),
                "--weights", small_weights_dir, "--out", out, "--batch-size", str(BATCH),
                "--beam-options=--runner=direct --direct_num_workers=2")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    # SIGKILL the driver and its worker processes, as when a machine dies.
    finished = kill_after_first_shard(proc, out, lambda p: os.killpg(p.pid, signal.SIGKILL), timeout=400)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert 1 <= len(finished) < 6, "the kill should land after the first shard and before the last"
    assert store.read_info(out)["complete"] is False
    mtimes = {p: os.stat(p).st_mtime_ns for p in finished}

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(finished)} shards already done, {6 - len(finished)} to compute" in again.stderr
    assert {p: os.stat(p).st_mtime_ns for p in finished} == mtimes  # finished shards untouched
    assert len(finished_shards(out)) == 6 and not glob.glob(os.path.join(out, "**", "*.tmp*"), recursive=True)
    _assert_same_embeddings(out, single_audio, atol=1e-6)
    info, ref = store.read_info(out), store.read_info(single_audio)
    assert info["complete"] is True and info["source"] == "audio"
    assert info["frontend_precision"] == ref["frontend_precision"] == "float32"
    assert {int(os.path.basename(r["path"])[:-4]) for r in info["skipped"]} == set(mini.bad)
    assert os.listdir(markers) == []


@pytest.mark.slow
def test_folder_of_audio_files(tmp_path, small_weights_dir):
    """A plain folder (nested, mixed formats, one corrupt and one short file), one local worker."""
    import soundfile as sf

    from conftest import tone_mix
    from vggish_jax.pipeline.embed import load_pretrained

    folder = tmp_path / "music"
    (folder / "b").mkdir(parents=True)
    sf.write(folder / "b" / "x.wav", tone_mix(2.1, 22050, seed=1), 22050)
    sf.write(folder / "a.flac", tone_mix(1.2, 44100, channels=2, seed=2), 44100)
    sf.write(folder / "c.wav", tone_mix(0.5, 16000, seed=3), 16000)  # too short
    (folder / "d.mp3").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (folder / "notes.txt").write_text("not audio")
    out = str(tmp_path / "emb")
    kwargs = dict(out=out, weights=small_weights_dir, beam_runner="direct", beam_workers=1, batch_size=BATCH,
                  shard_size=SHARD, log=lambda m: None)
    summary = run_extract(str(folder), **kwargs)
    info = store.read_info(out)
    assert info["source_identity"]["files"] == ["a.flac", "b/x.wav", "c.wav", "d.mp3"] and info["source"] == "folder"
    got = store.load_split(out, "all")
    assert list(got.track_ids) == [0, 1] and list(got.labels) == [-1, -1]
    emb = load_pretrained(small_weights_dir, batch_size=BATCH)
    for i, name in enumerate(("a.flac", "b/x.wav")):  # the single-process device path on the same file
        np.testing.assert_allclose(got.embeddings[i], emb.embed_file(folder / name), rtol=0, atol=1e-6)
    assert {(r["track_id"], os.path.basename(r["path"]), r["kind"]) for r in summary.skipped} == \
        {(2, "c.wav", "too_short"), (3, "d.mp3", "undecodable")}
    c = summary.counters
    assert c["vggish_jax:clips_skipped_too_short"] == 1 and c["vggish_jax:clips_skipped_undecodable"] == 1
    assert c["vggish_jax:clips_embedded"] == 2 and c["vggish_jax:shards_written"] == 2
    again = run_extract(str(folder), **kwargs)
    assert again.computed == {"all": []} and again.reused == {"all": [0, 1]} and again.skipped == summary.skipped
    # A file added since renumbers the clips: resuming into the same output would mix two numberings.
    sf.write(folder / "a0.wav", tone_mix(1.5, 16000, seed=4), 16000)
    with pytest.raises(ValueError, match=r"other settings \(files: added \['a0.wav'\], removed \[\]\)"):
        run_extract(str(folder), **kwargs)
    # The local runner finishes the same store: same identity, same shards.
    os.remove(folder / "a0.wav")
    os.remove(store.shard_path(out, "all", 1))
    local = run_extract(str(folder), out=out, weights=small_weights_dir, batch_size=BATCH, shard_size=SHARD, workers=0,
                        progress=False, log=lambda m: None)
    assert local.computed == {"all": [1]} and local.reused == {"all": [0]}
    np.testing.assert_allclose(store.load_split(out, "all").embeddings[1], got.embeddings[1], rtol=0, atol=1e-6)


def test_direct_runner_is_the_local_fn_api_runner_with_worker_processes():
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    runner, options = beam_runner.make("direct", 2)
    assert isinstance(runner, FnApiRunner)  # not Beam's DirectRunner, which first tries to download Prism
    d = options.view_as(DirectOptions)
    assert d.direct_num_workers == 2 and d.direct_running_mode == "multi_processing"
    _, options = beam_runner.make(None, 0, "--direct_num_workers=3")
    d = options.view_as(DirectOptions)
    assert d.direct_num_workers == 3 and d.direct_running_mode == "in_memory"


def test_other_runners_and_options_pass_through():
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.portability.flink_runner import FlinkRunner

    runner, options = beam_runner.make(None, 2, "--runner=FlinkRunner --flink_master=localhost:8081 --parallelism=4")
    assert isinstance(runner, FlinkRunner)
    all_opts = options.get_all_options(retain_unknown_options=True)
    assert all_opts["flink_master"] == "localhost:8081" and all_opts["parallelism"] == 4
    runner, options = beam_runner.make("FlinkRunner", 2, ["--flink_master=localhost:8081"])
    assert isinstance(runner, FlinkRunner) and options.view_as(StandardOptions).runner == "FlinkRunner"
    with pytest.raises(ValueError, match="contradicts"):
        beam_runner.make("direct", 2, "--runner=FlinkRunner")
    with pytest.raises(ValueError, match="--beam-runner NoSuchRunner"):
        beam_runner.make("NoSuchRunner", 2)


def test_plan_cuts_each_split_into_contiguous_shards():
    tasks = core.plan({"train": 7, "test": 1}, 3)
    assert [(t.split, t.index, list(t.indices)) for t in tasks] == [
        ("train", 0, [0, 1, 2]), ("train", 1, [3, 4, 5]), ("train", 2, [6]), ("test", 0, [0])]


def test_cli_without_apache_beam_is_one_clear_line(monkeypatch, capsys, tmp_path):
    from vggish_jax import cli

    monkeypatch.setitem(sys.modules, "apache_beam", None)  # as if the extra were not installed
    rc = cli.main(["extract", "--dataset", str(tmp_path), "--weights", str(tmp_path), "--out", str(tmp_path / "o"),
                   "--beam-options=--runner=direct"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip install 'vggish-jax[beam]'" in err[0]


@pytest.mark.slow
def test_a_failing_worker_is_one_line_and_a_rerun_completes(tmp_path, small_weights_dir, monkeypatch):
    """In-process runner (workers=0) so the patched DoFn is the one that runs; shard 1 fails once."""
    import soundfile as sf

    from conftest import tone_mix

    folder = tmp_path / "music"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"{i}.wav", tone_mix(1.0, 16000, seed=i), 16000)
    real = beam_extract.EmbedShards.process

    def failing(self, task):
        if task.index == 1:
            raise OSError("disk full (simulated)")
        yield from real(self, task)

    monkeypatch.setattr(beam_extract.EmbedShards, "process", failing)
    out = str(tmp_path / "emb")
    kwargs = dict(out=out, weights=small_weights_dir, beam_runner="direct", beam_workers=0, batch_size=BATCH,
                  shard_size=1, log=lambda m: None)
    with pytest.raises(RuntimeError) as e:
        run_extract(str(folder), **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and "disk full (simulated)" in msg and "rerun the same command" in msg
    assert not os.path.exists(store.shard_path(out, "all", 1)) and store.read_info(out)["complete"] is False
    before = {p: os.stat(p).st_mtime_ns for p in finished_shards(out)}

    monkeypatch.setattr(beam_extract.EmbedShards, "process", real)
    summary = run_extract(str(folder), **kwargs)
    assert summary.computed["all"] == sorted(set(range(3)) - {int(p[-9:-4]) for p in before})
    assert {p: os.stat(p).st_mtime_ns for p in before} == before and len(finished_shards(out)) == 3
    assert store.read_info(out)["complete"] is True
    # Identity is the weights' content, never their path: weights moved elsewhere resume the same store.
    import shutil

    moved = str(tmp_path / "weights_moved")
    shutil.copytree(small_weights_dir, moved)
    os.remove(store.shard_path(out, "all", 2))
    resumed = run_extract(str(folder), **{**kwargs, "weights": moved})
    assert resumed.computed == {"all": [2]} and resumed.reused == {"all": [0, 1]}
    assert store.read_info(out)["complete"] is True
    with pytest.raises(FileNotFoundError, match="no such folder"):
        run_extract(str(tmp_path / "nope"), **kwargs)


@pytest.mark.slow
def test_waveform_config_built_and_extracted_with_beam_in_process_equals_single_process(mini, small_weights_dir,
                                                                                        tmp_path):
    """fma/small_waveform (log-mel + int16 waveform) on the in-process runner (workers=0): build, then extract."""
    from vggish_jax.datasets import fma

    runner, options = beam_runner.make("direct", 0)
    b = fma.prepare("fma/small_waveform", data_dir=str(tmp_path / "beam"), manual_dir=mini.manual_dir,
                    beam_runner=runner, beam_options=options)
    ref = fma.prepare("fma/small_waveform", data_dir=str(tmp_path / "single"), manual_dir=mini.manual_dir, workers=0)
    for split in SPLITS:
        x, y = b.as_data_source(split), ref.as_data_source(split)
        assert len(x) == len(y) == 3
        for i in range(3):
            assert int(x[i]["track_id"]) == int(y[i]["track_id"]) and int(x[i]["label"]) == int(y[i]["label"])
            np.testing.assert_array_equal(x[i]["mel"], y[i]["mel"])
            assert x[i]["waveform"].dtype == np.int16 and x[i]["waveform"].shape[0] > 16000
            np.testing.assert_array_equal(x[i]["waveform"], y[i]["waveform"])
    assert fma.skip_report(b) == fma.skip_report(ref)
    # Extraction from the waveform build: Beam's workers run the single-process device path on the stored
    # int16 audio, with frontend_precision passed through (and recorded: a rerun with another is refused).
    single_extract = run_extract
    outs = {}
    for name, prec in (("single64", "float64"), ("single32", "float32")):
        outs[name] = str(tmp_path / name)
        single_extract("fma/small_waveform", data_dir=str(tmp_path / "single"), out=outs[name],
                       weights=small_weights_dir, batch_size=BATCH, shard_size=SHARD, workers=0, precision=prec,
                       progress=False)
    outs["beam64"] = str(tmp_path / "beam64")
    kwargs = dict(data_dir=str(tmp_path / "beam"), weights=small_weights_dir, beam_runner="direct", beam_workers=0,
                  batch_size=BATCH, shard_size=SHARD, log=lambda m: None)
    run_extract("fma/small_waveform", out=outs["beam64"], precision="float64", **kwargs)
    _assert_same_embeddings(outs["beam64"], outs["single64"], atol=1e-6)
    gap = max(float(np.abs(e - f).max()) for split in SPLITS
              for e, f in zip(store.load_split(outs["beam64"], split).embeddings,
                              store.load_split(outs["single32"], split).embeddings))
    assert gap > 1e-6  # float32 vs float64 frontend is visible, so the equality above says the option arrived
    info, ref = store.read_info(outs["beam64"]), store.read_info(outs["single64"])
    assert info["frontend_precision"] == ref["frontend_precision"] == "float64"
    with pytest.raises(ValueError, match="frontend_precision"):
        run_extract("fma/small_waveform", out=outs["beam64"], precision="float32", **kwargs)
