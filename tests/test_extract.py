"""`vggish-jax extract`: sharded, resumable embedding of the mini-FMA; a real kill mid-run, then resume."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import finished_shards, kill_after_first_shard
from mini_fma import make_mini_fma
from vggish_jax.pipeline import store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLITS = ("train", "validation", "test")
BATCH, SHARD = 2, 2  # shards of 2 one-example clips: one model call each
GENRES = ("Folk", "Hip-Hop", "Rock")  # 3 of the 8 classes: 3 clips per split keep the model calls few


@pytest.fixture(scope="module")
def fma_dirs(tmp_path_factory):
    """A mini-FMA and its TFDS build (built once, in this process)."""
    from vggish_jax.datasets import fma

    root = tmp_path_factory.mktemp("extract_fma")
    mini = make_mini_fma(root / "manual", per_genre_per_split=1, seconds=1.2, seed=1, genres=GENRES)
    data_dir = str(root / "data")
    fma.prepare("fma/small", data_dir=data_dir, manual_dir=mini.manual_dir, workers=0)
    return mini, data_dir


@pytest.fixture(scope="module")
def reference(fma_dirs, small_weights_dir, tmp_path_factory):
    """An uninterrupted extraction, in-process."""
    from conftest import run_extract

    mini, data_dir = fma_dirs
    out = str(tmp_path_factory.mktemp("ref") / "emb")
    summary = run_extract("fma/small", data_dir=data_dir, out=out, weights=small_weights_dir, batch_size=BATCH,
                          shard_size=SHARD, workers=0, progress=False)
    return out, summary


def _skipped_ids(records):
    """FMA track ids of skip records (their paths end in <track_id>.mp3)."""
    return {int(os.path.basename(r["path"])[:-4]) for r in records}


def _assert_same_embeddings(a, b):
    for split in SPLITS:
        x, y = store.load_split(a, split), store.load_split(b, split)
        np.testing.assert_array_equal(x.track_ids, y.track_ids)
        np.testing.assert_array_equal(x.labels, y.labels)
        assert len(x.embeddings) == len(y.embeddings)
        for e, f in zip(x.embeddings, y.embeddings):
            np.testing.assert_array_equal(e, f)


def test_reference_run_covers_every_kept_clip(reference, fma_dirs):
    mini, _ = fma_dirs
    out, summary = reference
    for split in SPLITS:
        s = store.load_split(out, split)
        assert list(s.track_ids) == mini.expected_ids(split)
        assert list(s.labels) == [mini.label_of(t) for t in s.track_ids]
        assert all(e.shape == (1, 128) and e.dtype == np.float32 and np.isfinite(e).all() for e in s.embeddings)
        assert len(glob.glob(os.path.join(out, split, "shard-*.npz"))) == 2  # 3 clips / 2 per shard
    assert summary.reused == {s: [] for s in SPLITS}


def test_embeddings_are_the_model_applied_to_the_stored_log_mels(reference, fma_dirs, small_weights_dir):
    from vggish_jax.datasets import fma
    from vggish_jax.pipeline.embed import load_pretrained

    _, data_dir = fma_dirs
    ds = fma.builder("fma/small", data_dir=data_dir).as_data_source("validation")
    emb = load_pretrained(small_weights_dir, batch_size=BATCH)
    got = store.load_split(reference[0], "validation")
    for i in (0, 2):
        want = emb.embed_examples(ds[i]["mel"])
        np.testing.assert_allclose(got.embeddings[i], want, rtol=1e-5, atol=1e-5)


def test_info_json_records_settings_and_skips(reference, fma_dirs, small_weights_dir):
    mini, _ = fma_dirs
    info = store.read_info(reference[0])
    assert info["complete"] is True and info["dataset"] == "fma/small"
    assert info["label_names"] == list(mini.genres)
    assert info["final_relu"] is False and info["postprocess"] is False
    assert info["weights"] == os.path.abspath(small_weights_dir)
    assert info["weights_metadata"]["source"] == "random"
    assert info["frontend"]["num_mel_bins"] == 64 and info["frontend"]["sample_rate"] == 16000
    assert _skipped_ids(info["skipped"]) == set(mini.bad)
    assert all(r["kind"] in ("undecodable", "too_short", "invalid") and r["reason"] for r in info["skipped"])
    assert info["num_clips"] == {s: 3 for s in SPLITS}


def test_killed_run_resumes_without_recomputing_and_matches(reference, fma_dirs, small_weights_dir, tmp_path):
    from conftest import run_extract

    mini, data_dir = fma_dirs
    out = str(tmp_path / "emb")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    settings = tmp_path / "settings.toml"
    settings.write_text(f"shard_size = {SHARD}\n")
    cmd = [sys.executable, "-m", "vggish_jax.cli", "extract", "--dataset", "fma/small", "--data-dir", data_dir,
           "--weights", small_weights_dir, "--out", out, "--batch-size", str(BATCH), "--config", str(settings),
           "--workers", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished = kill_after_first_shard(proc, out, lambda p: p.send_signal(signal.SIGKILL), timeout=240)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert 1 <= len(finished) < 6, "the kill should land after the first shard and before the last"
    assert store.read_info(out)["complete"] is False
    mtimes = {p: os.stat(p).st_mtime_ns for p in finished}

    summary = run_extract("fma/small", data_dir=data_dir, out=out, weights=small_weights_dir, batch_size=BATCH,
                          shard_size=SHARD, workers=0, progress=False)
    reused = {store.shard_path(out, s, i) for s, idx in summary.reused.items() for i in idx}
    computed = {store.shard_path(out, s, i) for s, idx in summary.computed.items() for i in idx}
    assert reused == set(finished) and not reused & computed and len(reused | computed) == 6
    assert {p: os.stat(p).st_mtime_ns for p in finished} == mtimes  # finished shards untouched
    assert not glob.glob(os.path.join(out, "**", "*.tmp*"), recursive=True)
    _assert_same_embeddings(out, reference[0])
    info, ref_info = store.read_info(out), store.read_info(reference[0])
    assert info == ref_info

    again = run_extract("fma/small", data_dir=data_dir, out=out, weights=small_weights_dir, batch_size=BATCH,
                        shard_size=SHARD, workers=0, progress=False)
    assert sum(map(len, again.computed.values())) == 0 and sum(map(len, again.reused.values())) == 6


def test_other_settings_into_the_same_directory_are_refused(reference, fma_dirs, small_weights_dir):
    from conftest import run_extract

    _, data_dir = fma_dirs
    with pytest.raises(ValueError, match=r"final_relu: True \(weights .*\) vs False \(.*info.json\)"):
        run_extract("fma/small", data_dir=data_dir, out=reference[0], weights=small_weights_dir, batch_size=BATCH,
                    shard_size=SHARD, final_relu=True, workers=0, progress=False)


def test_from_audio_decodes_in_worker_processes_and_agrees(reference, fma_dirs, small_weights_dir, tmp_path):
    from conftest import run_extract

    mini, data_dir = fma_dirs
    out = str(tmp_path / "emb_audio")
    # float64 device frontend: within 1e-5 of the NumPy oracle that made the stored log-mels
    summary = run_extract("fma/small", data_dir=str(tmp_path / "unused"), manual_dir=mini.manual_dir, out=out,
                          weights=small_weights_dir, batch_size=BATCH, shard_size=SHARD, workers=1, from_audio=True,
                          precision="float64", progress=False)
    assert _skipped_ids(summary.skipped) == set(mini.bad)
    for split in SPLITS:
        x, y = store.load_split(out, split), store.load_split(reference[0], split)
        np.testing.assert_array_equal(x.track_ids, y.track_ids)
        for e, f in zip(x.embeddings, y.embeddings):
            np.testing.assert_allclose(e, f, rtol=1e-5, atol=1e-5)
    info = store.read_info(out)
    assert info["source"] == "audio" and _skipped_ids(info["skipped"]) == set(mini.bad)


def test_postprocess_writes_quantised_pca_embeddings(reference, fma_dirs, small_weights_dir, tmp_path):
    from vggish_jax import VGGish
    from vggish_jax.models.vggish import postprocess
    from conftest import run_extract

    _, data_dir = fma_dirs
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    raw = store.load_split(reference[0], "test")
    scale = 3.0 / np.concatenate(raw.embeddings).std()  # PCA outputs of std 3: a large share is clipped
    pca = postprocess.PCAParams((scale * q).astype(np.float32), rng.standard_normal(128).astype(np.float32) * 0.01)
    model = VGGish.from_pretrained(small_weights_dir)
    model.attach(spec=model.spec, pca=pca)  # the same weights, other PCA params
    out = str(tmp_path / "emb_pp")
    run_extract("fma/small", data_dir=data_dir, out=out, weights=model, batch_size=BATCH, shard_size=SHARD,
                postprocess=True, workers=0, progress=False)
    got = store.load_split(out, "test")
    clipped = 0
    for g, r in zip(got.embeddings, raw.embeddings):
        # TF's postprocessor written out on the stored float rows: PCA, clip to [-2, 2], 0..255, truncate
        pcaed = (pca.eigen_vectors @ (r.astype(np.float64).T - pca.means[:, None])).T
        assert g.dtype == np.uint8
        np.testing.assert_array_equal(g, ((np.clip(pcaed, -2, 2) + 2) * (255 / 4)).astype(np.uint8))
        clipped += (np.abs(pcaed) > 2).sum()
    assert clipped > 0.2 * sum(r.size for r in raw.embeddings)
    assert store.read_info(out)["postprocess"] is True

    with pytest.raises(ValueError, match=r"no PCA params, which --postprocess needs; .*vggish-jax convert .*--pca"):
        no_pca = VGGish.from_pretrained(small_weights_dir)
        no_pca.attach(spec=no_pca.spec, pca=None)
        run_extract("fma/small", data_dir=data_dir, out=str(tmp_path / "x"), weights=no_pca, postprocess=True,
                    workers=0, progress=False)


def test_load_refuses_an_unfinished_extraction(reference, tmp_path):
    from vggish_jax.pipeline import stored

    assert len(store.load(reference[0], "train")) == 3
    info = store.read_info(reference[0])
    partial = tmp_path / "partial"
    store.write_info(str(partial), {**info, "complete": False})
    with pytest.raises(RuntimeError, match="did not finish; rerun"):
        store.load(str(partial), "train")
    with pytest.raises(RuntimeError, match="did not finish; rerun the same `vggish-jax extract`"):
        stored.read(str(partial))  # FAD's reader refuses it with the same check
    assert json.loads((partial / "info.json").read_text())["complete"] is False


def test_other_weights_converted_into_the_same_folder_are_refused(fma_dirs, tmp_path):
    """Issue 13.1: identity is the weights' content hash, not the folder path."""
    from vggish_jax import spec
    from vggish_jax.models.vggish import modeling, params
    from conftest import run_extract

    _, data_dir = fma_dirs
    weights, out = str(tmp_path / "weights"), str(tmp_path / "emb")
    params.save(weights, modeling.random(0), metadata={"source": "random", "seed": 0})
    first = json.load(open(os.path.join(weights, params.METADATA)))["weights_sha256"]
    run_extract("fma/small", data_dir=data_dir, out=out, weights=weights, batch_size=BATCH, shard_size=SHARD,
                workers=0, progress=False)
    info = store.read_info(out)
    assert info[spec.KEY]["weights_sha256"] == first and info[spec.KEY]["postprocess"] is None
    os.remove(store.shard_path(out, "test", 1))  # as if killed before the last shard
    kept = {p: os.stat(p).st_mtime_ns for p in finished_shards(out)}

    params.save(weights, modeling.random(1), metadata={"source": "random", "seed": 1})
    second = json.load(open(os.path.join(weights, params.METADATA)))["weights_sha256"]
    assert second != first
    with pytest.raises(spec.SpecMismatch) as e:
        run_extract("fma/small", data_dir=data_dir, out=out, weights=weights, batch_size=BATCH, shard_size=SHARD,
                    workers=0, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and os.path.abspath(weights) in msg and os.path.join(out, "info.json") in msg
    assert first[:12] in msg and second[:12] in msg and "weights_sha256" in msg
    assert {p: os.stat(p).st_mtime_ns for p in finished_shards(out)} == kept  # nothing written
    assert store.read_info(out)[spec.KEY]["weights_sha256"] == first


def test_assign_shards_is_a_deterministic_disjoint_cover():
    from vggish_jax.pipeline.core import assign as assign_shards

    shards = [(s, i) for s in SPLITS for i in range(5)]
    for count in (1, 2, 3, 4, 7, 20):
        parts = [assign_shards(shards, p, count) for p in range(count)]
        flat = [x for part in parts for x in part]
        assert sorted(flat) == sorted(shards) and len(flat) == len(shards)
        assert parts == [assign_shards(shards, p, count) for p in range(count)]
    with pytest.raises(ValueError, match="process_index 2 is not in 0..1"):
        assign_shards(shards, 2, 2)


def test_split_over_processes_makes_the_one_process_shard_set(reference, fma_dirs, small_weights_dir, tmp_path):
    """Simulated multi-host: process 0 of 3 is stopped early, then 2 processes finish the same set of shards."""
    from conftest import run_extract

    _, data_dir = fma_dirs
    out = str(tmp_path / "emb")

    def run(index, count):
        return run_extract("fma/small", data_dir=data_dir, out=out, weights=small_weights_dir, batch_size=BATCH,
                           shard_size=SHARD, workers=0, progress=False, process_index=index, process_count=count)

    def computed(summary):
        return {(s, i) for s, idx in summary.computed.items() for i in idx}

    first = run(0, 3)  # global shard order: train 0, train 1, validation 0, validation 1, test 0, test 1
    assert computed(first) == {("train", 0), ("validation", 1)} and not first.complete
    assert store.read_info(out)["complete"] is False
    second = run(1, 2)  # train 1, validation 1 (done), test 1
    assert computed(second) == {("train", 1), ("test", 1)} and not second.complete
    assert store.read_info(out)["complete"] is False  # only process 0 completes info.json
    last = run(0, 2)  # train 0 (done), validation 0, test 0; then every shard exists
    assert computed(last) == {("validation", 0), ("test", 0)} and last.complete
    assert sorted(os.path.relpath(p, out) for p in finished_shards(out)) == \
        sorted(os.path.relpath(p, reference[0]) for p in finished_shards(reference[0]))
    _assert_same_embeddings(out, reference[0])
    assert store.read_info(out) == store.read_info(reference[0])


_FOUR_DEVICES = """
import sys
import jax
import vggish_jax
from vggish_jax.pipeline.extract import open_source
assert jax.device_count() == 4, jax.devices()
data_dir, manual_dir, weights, out_mel, out_audio = sys.argv[1:]
model = vggish_jax.VGGish.from_pretrained(weights)
settings = vggish_jax.ExtractSettings(batch_size=2, shard_size=2, workers=0, progress=False, weights_dir=weights)
for out, kw in ((out_mel, {}), (out_audio, {"from_audio": True, "manual_dir": manual_dir})):
    vggish_jax.extract(open_source("fma/small", data_dir=data_dir, **kw), out, model, settings)
"""


@pytest.mark.slow
def test_four_devices_give_the_one_device_embeddings(reference, fma_dirs, small_weights_dir, tmp_path):
    """Stored mels and the waveform path, batches sharded over 4 fake CPU devices vs 1 (max abs diff <= 1e-5)."""
    from conftest import run_extract

    mini, data_dir = fma_dirs
    one_audio = str(tmp_path / "one_audio")
    run_extract("fma/small", data_dir=data_dir, manual_dir=mini.manual_dir, out=one_audio, weights=small_weights_dir,
                batch_size=BATCH, shard_size=SHARD, workers=0, from_audio=True, progress=False)
    four_mel, four_audio = str(tmp_path / "four_mel"), str(tmp_path / "four_audio")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _FOUR_DEVICES, data_dir, mini.manual_dir, small_weights_dir,
                           four_mel, four_audio], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for one, four in ((reference[0], four_mel), (one_audio, four_audio)):
        for split in SPLITS:
            x, y = store.load_split(one, split), store.load_split(four, split)
            np.testing.assert_array_equal(x.track_ids, y.track_ids)
            assert len(x.embeddings) == len(y.embeddings) == 3
            diff = max(float(np.abs(e - f).max()) for e, f in zip(x.embeddings, y.embeddings))
            assert diff <= 1e-5, (four, split, diff)


def test_a_short_clip_is_skipped_with_a_fix_that_works_pad_in_the_config_file(small_weights_dir, tmp_path):
    """extract has no --pad: the skip line's fix is `pad = true` in its --config file, and following it embeds the
    0.5-s clip as one zero-padded example (equal to the NumPy oracle's on the padded audio)."""
    import soundfile as sf

    from conftest import settings_toml
    from vggish_jax import cli
    import vggish_jax
    from vggish_jax import VGGish
    from vggish_jax.pipeline import store

    root = tmp_path / "songs"
    for name, seconds in (("rock/long.wav", 2.0), ("jazz/short.wav", 0.5)):
        (root / os.path.dirname(name)).mkdir(parents=True, exist_ok=True)
        t = np.arange(int(16000 * seconds)) / 16000
        sf.write(str(root / name), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    base = ["extract", "--dataset", str(root), "--weights", small_weights_dir, "--workers", "0"]
    assert cli.main(base + ["--out", str(tmp_path / "plain")]) == 0
    skipped = json.load(open(tmp_path / "plain" / "info.json"))["skipped"]
    assert [s["kind"] for s in skipped] == ["too_short"]
    assert "pad = true in extract's --config file" in skipped[0]["reason"], skipped[0]["reason"]

    config = settings_toml(tmp_path, "pad = true\n")
    assert cli.main(base + ["--out", str(tmp_path / "padded"), "--config", config]) == 0
    info = json.load(open(tmp_path / "padded" / "info.json"))
    assert info["skipped"] == [] and sum(info["num_clips"].values()) == 2
    split = store.load_split(str(tmp_path / "padded"), "all")
    short = [e for e, k in zip(split.embeddings, split.keys) if "jazz/short.wav" in str(k)]
    assert len(short) == 1 and short[0].shape == (1, 128)
    x, _ = sf.read(str(root / "jazz/short.wav"), dtype="float32")
    model = VGGish.from_pretrained(small_weights_dir)
    np.testing.assert_allclose(short[0], vggish_jax.embed(x, 16000, model, pad=True).values, rtol=1e-5, atol=1e-5)
