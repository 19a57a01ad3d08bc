"""The FMA TFDS builder on a generated mini-FMA: split counts, skip report, zips, no TensorFlow anywhere."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from mini_fma import make_mini_fma

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_mini_fma(tmp_path_factory.mktemp("fma_manual"), per_genre_per_split=1, seconds=1.2)


BUILD_AND_READ = textwrap.dedent("""
    import json, sys
    import numpy as np
    from vggish_jax.datasets import fma
    manual, data_dir, out = sys.argv[1:4]
    b = fma.prepare("fma/small", data_dir=data_dir, manual_dir=manual, workers=2)
    again = fma.prepare("fma/small", data_dir=data_dir, manual_dir=manual, workers=2)  # already built: no-op
    fresh = fma.builder("fma/small", data_dir=data_dir)  # reads everything back from disk
    res = {"splits": {}, "skipped": fma.skip_report(fresh), "meta": dict(fresh.info.metadata),
           "names": list(fma.label_names(fresh))}
    for split, ds in fma.data_sources(fresh).items():
        rows = [ds[i] for i in range(len(ds))]
        res["splits"][split] = [(int(r["track_id"]), int(r["label"]), list(r["mel"].shape)) for r in rows]
        if split == "test":
            np.save(out + ".npy", rows[0]["mel"])
    res["tensorflow_imported"] = "tensorflow" in sys.modules
    json.dump(res, open(out, "w"))
""")


@pytest.fixture(scope="module")
def built(mini, tmp_path_factory):
    """Build + read back in a fresh interpreter (decode pool of 2 processes); return what it saw."""
    d = tmp_path_factory.mktemp("fma_built")
    out = str(d / "result.json")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", BUILD_AND_READ, mini.manual_dir, str(d / "data"), out],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out) as f:
        res = json.load(f)
    res["mel0"] = np.load(out + ".npy")
    res["stderr"] = proc.stderr
    return res


def test_split_counts_labels_and_order(built, mini):
    assert built["names"] == list(mini.genres)
    for split in SPLITS:
        rows = built["splits"][split]
        assert [r[0] for r in rows] == mini.expected_ids(split)  # bad clips gone, ascending track_id
        assert [r[1] for r in rows] == [mini.label_of(r[0]) for r in rows]
        assert all(r[2] == [1, 96, 64] for r in rows)  # 1.2 s -> one 0.975-s example
    assert built["meta"]["expected_counts"] == {"train": 10, "validation": 9, "test": 8}
    assert built["meta"]["kept_counts"] == {"train": 8, "validation": 8, "test": 8}


def test_skip_report_names_each_bad_clip_and_why(built, mini):
    report = {r["track_id"]: r for r in built["skipped"]}
    assert set(report) == set(mini.bad)
    for tid, kind in mini.bad.items():
        r = report[tid]
        assert r["path"] == mini.path_of(tid) and r["path"] in r["reason"]
        expected = {"known_bad": "listed by the FMA maintainers", "short": "shorter than one VGGish example",
                    "corrupt": "cannot decode"}[kind]
        assert expected in r["reason"]
    assert "skipped track" in built["stderr"]


def test_stored_log_mel_is_file_examples(built, mini):
    from vggish_jax.models.vggish.frontend import file_examples

    first_test_id = mini.expected_ids("test")[0]
    np.testing.assert_array_equal(built["mel0"], file_examples(mini.path_of(first_test_id)))


def test_tensorflow_never_imported(built):
    assert built["tensorflow_imported"] is False


def test_builds_from_the_official_zips(mini, tmp_path):
    from vggish_jax.datasets import fma

    zips = tmp_path / "zips"
    zips.mkdir()
    for top in ("fma_metadata", "fma_small"):
        with zipfile.ZipFile(zips / f"{top}.zip", "w", compression=zipfile.ZIP_BZIP2) as z:
            for dirpath, _, files in os.walk(os.path.join(mini.manual_dir, top)):
                for name in files:
                    full = os.path.join(dirpath, name)
                    z.write(full, os.path.relpath(full, mini.manual_dir))
    b = fma.prepare("fma/small", data_dir=str(tmp_path / "data"), manual_dir=str(zips), workers=0)
    for split in SPLITS:
        ds = b.as_data_source(split)
        assert [int(ds[i]["track_id"]) for i in range(len(ds))] == mini.expected_ids(split)
    assert os.path.isdir(tmp_path / "data" / "downloads" / "fma_extracted" / "fma_small")
    assert not os.path.exists(tmp_path / "data" / "downloads" / "fma_extracted" / "fma_small.incomplete")


def test_missing_sources_say_what_to_download(tmp_path):
    from vggish_jax.datasets import fma

    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "README").write_text("nothing useful here")
    with pytest.raises(FileNotFoundError, match=r"fma_metadata.zip: not found .*https://os.unil.cloud.switch.ch/fma/"):
        fma.prepare("fma/small", data_dir=str(tmp_path / "data"), manual_dir=str(tmp_path / "manual"), workers=0)
    with pytest.raises(FileNotFoundError, match="manual directory does not exist"):
        fma.prepare("fma/small", data_dir=str(tmp_path / "data"), manual_dir=str(tmp_path / "nope"), workers=0)
    with pytest.raises(ValueError, match="unknown dataset 'fma/huge'.*fma/small"):
        fma.builder("fma/huge", data_dir=str(tmp_path))


def test_download_checks_sha1_and_fails_clearly_offline(tmp_path):
    from vggish_jax.datasets import fma

    src = tmp_path / "archive.zip"
    src.write_bytes(b"pretend archive bytes" * 100)
    sha1 = hashlib.sha1(src.read_bytes()).hexdigest()
    dest = str(tmp_path / "dl" / "archive.zip")
    assert fma.download_file(src.as_uri(), dest, sha1) == dest
    assert open(dest, "rb").read() == src.read_bytes()
    with pytest.raises(RuntimeError, match="SHA-1 .* != expected 0000"):
        fma.download_file(src.as_uri(), str(tmp_path / "dl" / "bad.zip"), "0" * 40)
    assert not os.path.exists(tmp_path / "dl" / "bad.zip")
    with pytest.raises(RuntimeError, match="download failed .*--manual-dir"):
        fma.download_file((tmp_path / "missing.zip").as_uri(), str(tmp_path / "dl" / "m.zip"), None)
    assert set(fma.ARCHIVE_SHA1) >= {"fma_metadata.zip", "fma_small.zip", "fma_medium.zip"}


def _oracle_of_int16(waveform):
    """The NumPy oracle log-mel of stored int16 audio, scaled as decode.to_int16 stored it (x 32767)."""
    from vggish_jax.models.vggish import frontend

    return frontend.waveform_to_examples(waveform.astype(np.float64) / 32767.0, 16000)


def test_waveform_option_stores_16k_int16_and_its_log_mel(mini):
    from vggish_jax import audio
    from vggish_jax.datasets import decode
    from vggish_jax.models.vggish.frontend import file_examples

    path = mini.path_of(mini.expected_ids("train")[0])
    clip = decode.decode_clip(path, waveform=True)
    wave, sr = audio.load(path, 16000)
    assert clip["waveform"].dtype == np.int16 and clip["waveform"].shape == wave.shape
    np.testing.assert_allclose(clip["waveform"] / 32767.0, wave, atol=1.0 / 32767)
    np.testing.assert_allclose(clip["mel"], _oracle_of_int16(clip["waveform"]), rtol=0, atol=1e-5)
    # The float audio's log-mel (what fma/small stores) differs only by the rounding, most in quiet bands.
    np.testing.assert_allclose(clip["mel"], file_examples(path), rtol=0, atol=0.05)
    bad = mini.path_of(next(t for t, k in mini.bad.items() if k == "corrupt"))
    assert isinstance(decode.decode_clip(bad), str) and bad in decode.decode_clip(bad)


def test_small_waveform_config_round_trips(tmp_path):
    from vggish_jax.datasets import decode, fma

    mini = make_mini_fma(tmp_path / "m", per_genre_per_split=1, seconds=1.1, genres=("Pop",), corrupt=False,
                         short=False, known_bad=False)
    b = fma.prepare("fma/small_waveform", data_dir=str(tmp_path / "data"), manual_dir=mini.manual_dir, workers=0)
    ds = fma.data_sources(b)["validation"]
    assert len(ds) == 1 and int(ds[0]["label"]) == mini.genres.index("Pop")
    want = decode.decode_clip(mini.path_of(int(ds[0]["track_id"])), waveform=True)
    np.testing.assert_array_equal(ds[0]["waveform"], want["waveform"])
    np.testing.assert_array_equal(ds[0]["mel"], want["mel"])
    np.testing.assert_allclose(ds[0]["mel"], _oracle_of_int16(ds[0]["waveform"]), rtol=0, atol=1e-5)
    assert fma.skip_report(b) == []


def test_waveform_log_mel_is_that_of_the_rounded_audio_even_when_quiet(tmp_path):
    """A near-silent clip, where int16 rounding moves the log-mel: the stored mel is the rounded audio's."""
    import soundfile as sf

    from vggish_jax.datasets import decode
    from vggish_jax.models.vggish import frontend

    rng = np.random.default_rng(3)
    t = np.arange(int(1.5 * 16000)) / 16000
    quiet = 2e-4 * np.sin(2 * np.pi * 440 * t) + 2e-5 * rng.standard_normal(t.size)
    path = str(tmp_path / "quiet.wav")
    sf.write(path, quiet.astype(np.float32), 16000, subtype="FLOAT")
    clip = decode.decode_clip(path, waveform=True)
    np.testing.assert_array_equal(clip["waveform"], np.round(quiet.astype(np.float32) * 32767.0).astype(np.int16))
    np.testing.assert_allclose(clip["mel"], _oracle_of_int16(clip["waveform"]), rtol=0, atol=1e-5)
    unrounded = frontend.waveform_to_examples(quiet, 16000)
    assert np.abs(clip["mel"] - unrounded).max() > 1e-3  # so the check above tells the two apart
