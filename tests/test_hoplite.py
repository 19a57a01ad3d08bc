"""perch-hoplite: `embed --format hoplite` writes a database that hoplite's own reader and search use, search
by example finds each query window itself, and VGGishModel is an EmbeddingModel hoplite's pipeline runs."""
import os

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("perch_hoplite", reason="needs perch-hoplite, in a venv of its own: python3 -m venv .venv-hoplite "
                                            "&& .venv-hoplite/bin/pip install -e '.[test,hoplite]' (see .ci/run)")
from perch_hoplite.db import sqlite_usearch_impl  # noqa: E402
from perch_hoplite.zoo import zoo_interface  # noqa: E402

from conftest import tone_mix  # noqa: E402
from vggish_jax import cli, hoplite  # noqa: E402
from vggish_jax.models.vggish import frontend  # noqa: E402
from vggish_jax.models.vggish.modeling import VGGish  # noqa: E402

SR = 16000
WINDOW = round(frontend.example_seconds() * SR)  # 15600 samples


def noises(seconds: float, seed: int) -> np.ndarray:
    """White, then brown, then 8-Hz gated noise, a third of the time each: windows that differ in kind
    (stationary noise gives windows a random-weights model can barely tell apart)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    white = rng.standard_normal(n // 3)
    brown = np.cumsum(rng.standard_normal(n // 3))
    gate = np.arange(n - 2 * (n // 3)) % (SR // 8) < SR // 32
    return 0.3 * np.concatenate([white, (brown - brown.mean()) / brown.std(), rng.standard_normal(gate.size) * gate])


def melody(seconds: float) -> np.ndarray:
    """A note every 0.3 s, with its octave, no two alike: each window holds other notes."""
    t = np.arange(int(seconds * SR)) / SR
    notes = np.array([220, 330, 494, 262, 392, 587, 311, 466, 698])
    phase = 2 * np.pi * np.cumsum(notes[np.minimum((t / 0.3).astype(int), len(notes) - 1)]) / SR
    return 0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three clips of distinct content at 16 kHz (a chirp mix, noises, a melody) and a 44.1-kHz stereo one;
    float samples, so a window cut from a file is the samples the database embedded."""
    d = tmp_path_factory.mktemp("clips")
    sounds = {"chirps.wav": (tone_mix(3.1, SR, seed=1), SR), "noise.wav": (noises(2.4, seed=2), SR),
              "melody.wav": (melody(2.5), SR), "stereo44k.wav": (tone_mix(2.0, 44100, channels=2, seed=3), 44100)}
    paths = {}
    for name, (x, rate) in sounds.items():
        paths[name] = str(d / name)
        sf.write(paths[name], np.asarray(x, np.float32), rate, subtype="FLOAT")
    return paths


@pytest.fixture(scope="module")
def database(clips, small_weights_dir, tmp_path_factory):
    db_dir = str(tmp_path_factory.mktemp("db") / "db")
    missing = os.path.join(os.path.dirname(clips["melody.wav"]), "missing.wav")
    code = cli.main(["embed", *clips.values(), missing, "--weights", small_weights_dir, "--out", db_dir,
                     "--format", "hoplite", "--workers", "0"])
    assert code == 0
    return db_dir


def test_database_holds_every_row_with_its_file_and_offsets(database, clips, capsys):
    """hoplite's own reader: one recording per file, one window per embed row, offsets [start_s, + 0.975 s]."""
    import json

    with open(os.path.join(database, "embeddings.json")) as f:
        meta = json.load(f)
    db = sqlite_usearch_impl.SQLiteUSearchDB.create(db_path=database, readonly=True)
    recordings = {r.id: r.filename for r in db.get_all_recordings()}
    assert sorted(recordings.values()) == sorted(os.path.realpath(p) for p in clips.values())
    with np.load(os.path.join(database, "embeddings.npz")) as z:
        rows = {k: z[k] for k in z.files}
    got = {}
    for w in db.get_all_windows(include_embedding=True):
        got[(recordings[w.recording_id], round(w.offsets[0], 6))] = (w.offsets[1], w.embedding)
    assert len(got) == db.count_embeddings() == sum(len(v) for v in rows.values())
    for key, values in rows.items():
        for start, row in zip(meta["start_s"][key], values):
            end, stored = got[(key, start)]
            assert end == pytest.approx(start + 0.975, abs=1e-6)
            np.testing.assert_allclose(stored, row / np.linalg.norm(row), atol=1e-3)  # float16 index
    db.db.close()


def test_each_query_window_finds_itself_first(database, clips, small_weights_dir, tmp_path):
    model = VGGish.from_pretrained(small_weights_dir)
    checked = 0
    for name in ("chirps.wav", "noise.wav", "melody.wav"):
        x, rate = sf.read(clips[name], dtype="float32")
        assert rate == SR
        for start in np.arange(0, len(x) - WINDOW + 1, int(0.96 * SR)):
            query = str(tmp_path / f"{name}-{start}.wav")
            sf.write(query, x[start:start + WINDOW], SR, subtype="FLOAT")
            found = hoplite.search(database, query, model, top=3)
            file, start_s, end_s, score = found[0]
            assert (file, start_s) == (os.path.realpath(clips[name]), pytest.approx(start / SR, abs=1e-6))
            assert end_s == pytest.approx(start / SR + 0.975, abs=1e-6)
            assert score == pytest.approx(1.0, abs=2e-3) and [f[3] for f in found] == sorted(
                (f[3] for f in found), reverse=True)
            # the runner-up well below: far more than the float16 index's rounding (~1e-3) apart
            assert len(found) == 3 and found[1][:2] != found[0][:2] and found[1][3] < 0.995
            checked += 1
    assert checked == 3 + 2 + 2


def test_skipped_files_are_reported_and_rerun_rebuilds(database, clips, small_weights_dir, capsys):
    """embed's usual skip report and exit status (1: a file could not be embedded and nothing was new); the
    database is rebuilt from everything embedded so far."""
    missing = os.path.join(os.path.dirname(clips["melody.wav"]), "missing.wav")
    code = cli.main(["embed", clips["melody.wav"], missing, "--weights", small_weights_dir, "--out", database,
                     "--format", "hoplite", "--workers", "0"])
    err = capsys.readouterr()
    assert missing in err.err and "1 of 2 files could not be embedded" in err.err
    assert code == 1 and "hoplite database of " in err.out and " of 4 files" in err.out
    assert sorted(os.listdir(database)) == ["embeddings.json", "embeddings.npz", "embeddings.store",
                                            "hoplite.sqlite", "usearch.index"]


def test_search_refuses_a_model_that_made_its_embeddings_differently(database, clips, small_weights_dir):
    from vggish_jax.spec import SpecMismatch

    other = VGGish.from_pretrained(small_weights_dir, final_relu=True)  # the database's rows have none
    with pytest.raises(SpecMismatch, match=rf"^the query model .* was made differently from {database}: final_relu"):
        hoplite.search(database, clips["melody.wav"], other)
    with pytest.raises(FileNotFoundError, match=r"no hoplite database here"):
        hoplite.search(os.path.dirname(database), clips["melody.wav"], other)


def test_vggish_model_runs_in_hoplites_embed_pipeline(clips, small_weights_dir, database, tmp_path):
    """perch-hoplite's own EmbedWorker, given our EmbeddingModel, writes the windows `embed --format hoplite` did:
    same offsets (from window_size_s and hop_size_s) and the same embeddings."""
    from ml_collections import config_dict
    from perch_hoplite.agile import embed as agile_embed, source_info

    model = hoplite.VGGishModel(model=small_weights_dir)
    assert isinstance(model, zoo_interface.EmbeddingModel) and model.sample_rate == SR
    x, _ = sf.read(clips["chirps.wav"], dtype="float32")
    single, batch = model.embed(x), model.batch_embed(np.stack([x, x[::-1].copy()]))
    assert single.embeddings.shape == (3, 1, 128) and batch.embeddings.shape == (2, 3, 1, 128) and batch.batched
    np.testing.assert_array_equal(batch.embeddings[0], single.embeddings)

    folder = os.path.dirname(clips["chirps.wav"])
    sources = source_info.AudioSources((source_info.AudioSourceConfig(
        dataset_name="clips", base_path=folder, file_glob="[cm]*.wav", min_audio_len_s=0.0, target_sample_rate_hz=SR),))
    db = sqlite_usearch_impl.SQLiteUSearchDB.create(
        db_path=str(tmp_path / "theirs"), usearch_cfg=sqlite_usearch_impl.get_default_usearch_config(128))
    config = agile_embed.ModelConfig(model_key="vggish_jax", embedding_dim=128,
                                     model_config=config_dict.ConfigDict({"weights": small_weights_dir}))
    agile_embed.EmbedWorker(sources, config, db, embedding_model=model, audio_worker_threads=1).process_all()
    theirs = {(os.path.basename(db.get_recording(w.recording_id).filename), round(w.offsets[0], 6),
               round(w.offsets[1], 6)): w.embedding for w in db.get_all_windows(include_embedding=True)}
    ours_db = sqlite_usearch_impl.SQLiteUSearchDB.create(db_path=database, readonly=True)
    ours = {(os.path.basename(ours_db.get_recording(w.recording_id).filename), round(w.offsets[0], 6),
             round(w.offsets[1], 6)): w.embedding for w in ours_db.get_all_windows(include_embedding=True)}
    ours_db.db.close()
    assert set(theirs) == {k for k in ours if k[0] in ("chirps.wav", "melody.wav")}
    for k, e in theirs.items():
        np.testing.assert_allclose(hoplite.unit_rows(e), ours[k], atol=2e-3)
