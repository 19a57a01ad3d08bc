"""The mfcc and musicnn feature sets computed from a store's audio files (classify.audio_features via compare).

A labelled CSV of generated genre clips is extracted with the small VGGish, then compared on mean_std, mfcc
and musicnn. Oracles: torchvggish's copy of Google's NumPy frontend on audio decoded by soundfile and
resampled by scipy, an explicit DCT-II matrix and moment formulas for the MFCC statistics; the FMA TFDS
builder's own clip decoding for "the same mfcc as the TFDS path"; the MusiCNN tagger run on the same
independently decoded audio.
"""
import csv
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from mini_fma import genre_clip
from conftest import settings_toml
from vggish_jax import audio, cli
from vggish_jax.classify import audio_features as af
from vggish_jax.classify import compare as cc

SR = 22050  # not 16 kHz, so the resampler is part of what is checked
GENRES = {"blues": 0, "jazz": 3, "rock": 6}  # genre_clip indices far apart
PER_SPLIT = {"train": 2, "validation": 1, "test": 1}
CLASSIFIERS = ("LR", "kNN")
GENRES_FMA = ("Electronic", "Folk", "Rock")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, small_weights_dir):
    """(store, [files], {file: split}) of a labels-CSV extraction of 12 three-second clips."""
    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(0)
    rows, split_of = [], {}
    for name, g in GENRES.items():
        os.makedirs(root / name)
        i = 0
        for split, k in PER_SPLIT.items():
            for _ in range(k):
                rel = f"{name}/{name}.{i:05d}.wav"
                sf.write(root / rel, genre_clip(g, 3.0, SR, rng), SR)
                rows.append({"path": rel, "label": name, "split": split})
                split_of[str(root / rel)] = split
                i += 1
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    out = str(tmp_path_factory.mktemp("store") / "emb")
    assert cli.main(["extract", "--dataset", str(root / "labels.csv"), "--out", out, "--weights", small_weights_dir,
                     "--workers", "0"]) == 0
    return out, sorted(split_of), split_of, str(root)


@pytest.fixture(scope="module")
def first_run(labelled, tmp_path_factory):
    """One comparison with a fresh cache (decoding in this process: a pool's start-up would cost more here)."""
    out = str(tmp_path_factory.mktemp("cmp") / "run")
    lines = []
    report = cc.compare(labelled[0], out,
                        cc.CompareSettings(feature_sets=("mean_std", "mfcc", "musicnn"), classifiers=CLASSIFIERS,
                                           jobs=1),
                        log=lines.append)
    return out, report, lines


def cached(out: str, name: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(out, "features", f"{name}.npz")) as z:
        return dict(zip(map(str, z["paths"]), z["vectors"]))


def decoded_16k(path: str) -> np.ndarray:
    """soundfile + scipy's polyphase resampler, with the kaiser_best-like filter our resampler documents."""
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    g = np.gcd(sr, 16000)
    up, down = 16000 // g, sr // g
    return signal.resample_poly(x.mean(axis=1), up, down, window=audio.lowpass(up, down))


def mfcc_stats_oracle(log_mel: np.ndarray, n: int = 20) -> np.ndarray:
    """An explicit orthonormal DCT-II matrix and the moments written out (biased skew and excess kurtosis)."""
    bands = log_mel.shape[-1]
    k, b = np.arange(n)[:, None], np.arange(bands)[None, :]
    basis = np.sqrt(2.0 / bands) * np.cos(np.pi * k * (2 * b + 1) / (2 * bands))
    basis[0] /= np.sqrt(2.0)
    m = log_mel.reshape(-1, bands) @ basis.T
    d = m - m.mean(0)
    m2, m3, m4 = (d ** 2).mean(0), (d ** 3).mean(0), (d ** 4).mean(0)
    return np.concatenate([m.mean(0), np.sqrt(m2), m.min(0), m.max(0), np.median(m, 0), m3 / m2 ** 1.5,
                           m4 / m2 ** 2 - 3.0])


def test_table_has_file_features_equal_to_independent_ones(labelled, first_run):
    from torchvggish import vggish_input

    from vggish_jax.datasets import decode
    from vggish_jax.models.musicnn import frontend as mf
    from vggish_jax.models.musicnn import tagger

    _, files, _, _ = labelled
    out, report, _ = first_run
    assert report["feature_sets"] == ["mean_std", "mfcc", "musicnn"]
    cells = {(c["feature_set"], c["classifier"]): c for c in report["cells"]}
    for f in ("mfcc", "musicnn"):
        for c in CLASSIFIERS:
            assert cells[(f, c)]["test_accuracy"] is not None, (f, c)
    assert report["skipped"] == [] and report["audio_features"]["decoded"] == len(files)
    assert report["split_sizes"] == {s: k * len(GENRES) for s, k in PER_SPLIT.items()}
    mfcc, musicnn = cached(out, "mfcc"), cached(out, "musicnn")
    assert sorted(mfcc) == sorted(musicnn) == files
    waves = {p: decoded_16k(p) for p in files}
    for p in files:
        mel = vggish_input.waveform_to_examples(waves[p], 16000, return_tensor=False)
        np.testing.assert_allclose(mfcc[p], mfcc_stats_oracle(mel), rtol=1e-4, atol=1e-3)
        # the FMA TFDS builder decodes a clip the same way: equal vectors for the same audio
        tfds_mel = decode.decode_clip(p)["mel"]
        np.testing.assert_allclose(mfcc[p], mfcc_stats_oracle(tfds_mel.astype(np.float64)), rtol=1e-5, atol=1e-5)
    patches = [mf.patches(mf.log_mel(waves[p].astype(np.float32))) for p in files]
    feats = tagger.Tagger().run(np.concatenate(patches))["penultimate"]
    per_clip = np.split(feats, np.cumsum([len(x) for x in patches])[:-1])
    for p, f in zip(files, per_clip):
        np.testing.assert_allclose(musicnn[p], np.concatenate([f.mean(0), f.std(0)]), rtol=1e-3, atol=1e-3)


def test_a_process_pool_gives_the_same_vectors(labelled, first_run, tmp_path):
    files = labelled[1][:3]
    r = af.compute({"some": files}, ("mfcc",), cache_dir=str(tmp_path), workers=2, log=lambda m: None)
    want = cached(first_run[0], "mfcc")
    assert r.decoded == 3 and r.skipped == [] and r.keep["some"].all()
    np.testing.assert_array_equal(r.x["mfcc"]["some"], np.stack([want[p] for p in files]))


def test_a_labelled_folder_store_names_its_files(labelled, first_run, tmp_path, small_weights_dir, monkeypatch):
    """`extract --dataset DIR` keys clips by path too: its files are found, and the cache (by path) serves them."""
    from vggish_jax.pipeline import store

    _, files, _, root = labelled
    out = str(tmp_path / "folder")
    assert cli.main(["extract", "--dataset", root, "--out", out, "--weights", small_weights_dir, "--workers", "0"
                     ]) == 0
    got = af.store_files(store.read_info(out), {"all": store.load_split(out, "all").keys})
    assert sorted(got["all"]) == files
    calls = counting_load(monkeypatch)
    r = af.compute(got, cache_dir=os.path.join(first_run[0], "features"), log=lambda m: None)
    want = cached(first_run[0], "musicnn")
    assert calls == [] and r.cached == len(files)
    np.testing.assert_array_equal(r.x["musicnn"]["all"], np.stack([want[p] for p in got["all"]]))


def copy_cache(src_out: str, dst_out: str) -> None:
    shutil.copytree(os.path.join(src_out, "features"), os.path.join(dst_out, "features"))


def counting_load(monkeypatch) -> list[str]:
    calls = []
    real = audio.load

    def load(path, *a, **k):
        calls.append(os.fspath(path))
        return real(path, *a, **k)

    monkeypatch.setattr(audio, "load", load)
    return calls


def test_cache_is_reused_and_a_touched_file_recomputed(labelled, first_run, tmp_path, monkeypatch):
    store, files, _, _ = labelled
    out = str(tmp_path / "again")
    copy_cache(first_run[0], out)
    calls = counting_load(monkeypatch)
    assert cli.main(["compare", "--embeddings", store, "--out", out, "--features", "mfcc,musicnn",
                     "--classifiers", "LR", "--config", settings_toml(tmp_path, "jobs = 1\n")]) == 0
    with open(os.path.join(out, "table.json")) as f:
        report = json.load(f)
    assert calls == [] and report["audio_features"] == {"from_files": ["mfcc", "musicnn"], "decoded": 0,
                                                         "cached": len(files)}
    before = {c["feature_set"]: c["test_accuracy"] for c in first_run[1]["cells"] if c["classifier"] == "LR"}
    assert {c["feature_set"]: c["test_accuracy"] for c in report["cells"]} == \
           {f: before[f] for f in ("mfcc", "musicnn")}
    old = cached(out, "mfcc")
    st = os.stat(files[0])
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:  # MusiCNN's cache works alike: spare its run
        report = cc.compare(store, out, cc.CompareSettings(feature_sets=("mfcc",), classifiers=("LR",), jobs=1),
                            log=lambda m: None)
    finally:  # the other tests' caches stay valid
        os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert calls == [files[0]] and report["audio_features"] == {"from_files": ["mfcc"], "decoded": 1,
                                                                "cached": len(files) - 1}
    np.testing.assert_array_equal(cached(out, "mfcc")[files[0]], old[files[0]])


def test_undecodable_file_is_dropped_from_every_row(labelled, first_run, tmp_path):
    store, files, split_of, _ = labelled
    bad = next(p for p in files if split_of[p] == "test")
    out = str(tmp_path / "bad")
    copy_cache(first_run[0], out)
    with open(bad, "rb") as f:
        original = f.read()
    st = os.stat(bad)
    lines = []
    try:
        with open(bad, "wb") as f:
            f.write(b"not audio at all" * 64)
        report = cc.compare(store, out,
                            cc.CompareSettings(feature_sets=("mean_std", "mfcc", "musicnn"), classifiers=("LR",),
                                               jobs=1),
                            log=lines.append)
    finally:  # the same bytes and stamp again: the other tests' caches stay valid
        with open(bad, "wb") as f:
            f.write(original)
        os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))
    mentions = [ln for ln in lines if bad in ln]
    assert len(mentions) == 1 and mentions[0].startswith("skipped ") and "cannot decode" in mentions[0]
    assert [(s["kind"], s["path"]) for s in report["skipped"]] == [("undecodable", bad)]
    assert json.load(open(os.path.join(out, "table.json")))["skipped"] == report["skipped"]
    sizes = {s: k * len(GENRES) for s, k in PER_SPLIT.items()}
    assert report["split_sizes"] == {**sizes, "test": sizes["test"] - 1}  # the same clips in every row
    assert sum(report["class_counts"]["test"]) == sizes["test"] - 1
    assert {c["feature_set"] for c in report["cells"] if c["test_accuracy"] is not None} == \
           {"mean_std", "mfcc", "musicnn"}


def test_store_files_finds_fma_mp3s_and_says_why_not(tmp_path):
    keys = {"train": np.array(["fma:2", "fma:140"]), "test": np.array(["fma:1482"])}
    info = {"source": "audio", "dataset": "fma/small"}
    with pytest.raises(af.NoAudio, match="set manual_dir = \"DIR\" in compare's --config file"):
        af.store_files(info, keys)
    os.makedirs(tmp_path / "fma_small")
    got = af.store_files(info, keys, manual_dir=str(tmp_path))
    assert got == {"train": [str(tmp_path / "fma_small" / "000" / "000002.mp3"),
                             str(tmp_path / "fma_small" / "000" / "000140.mp3")],
                   "test": [str(tmp_path / "fma_small" / "001" / "001482.mp3")]}
    with pytest.raises(af.NoAudio, match="set data_dir = \"DIR\" in compare's --config file"):
        af.store_files({"source": "tfds", "dataset": "fma/small"}, keys)
    with pytest.raises(af.NoAudio, match="not audio files"):
        af.store_files({"source": "audioset_v1_release"}, {"train": np.array(["abc:30"])})
    with pytest.raises(af.NoAudio, match="no clip keys"):
        af.store_files({"source": "folder"}, {"train": None})


def test_compare_says_what_is_missing_for_a_store_without_audio(tmp_path):
    from vggish_jax.pipeline import store

    rng = np.random.default_rng(0)
    root = str(tmp_path / "emb")
    for s in cc.SPLITS:
        store.write_shard(store.shard_path(root, s, 0), [0, 1, 2, 3], [0, 1, 0, 1],
                          [rng.normal(size=(10, 128)).astype(np.float32) + c for c in (0, 3, 0, 3)],
                          keys=[f"vid{s}{i}:30" for i in range(4)])
    store.write_info(root, {"label_names": ["a", "b"], "dataset": "audioset", "source": "audioset_v1_release",
                            "final_relu": False, "postprocess": True, "complete": True})
    lines = []
    report = cc.compare(root, str(tmp_path / "out"),
                        cc.CompareSettings(feature_sets=("mean_std", "mfcc", "musicnn"), classifiers=("LR",), jobs=1),
                        log=lines.append)
    assert report["feature_sets"] == ["mean_std"] and report["skipped"] == []
    said = [ln for ln in lines if ln.startswith("mfcc, musicnn: skipped (its clips are not audio files")]
    assert len(said) == 1 and "'vidtrain0:30'" in said[0]


def test_a_vanished_file_is_reported_missing_and_not_cached(labelled, first_run, tmp_path):
    files = labelled[1]
    gone = str(tmp_path / "gone" / "song.wav")
    cache = str(tmp_path / "features")
    shutil.copytree(os.path.join(first_run[0], "features"), cache)
    r = af.compute({"train": [files[0], gone], "test": [files[1]]}, ("mfcc",), cache_dir=cache, log=lambda m: None)
    assert [(s.kind, s.path) for s in r.skipped] == [("missing", gone)] and gone in r.skipped[0].line()
    assert r.keep["train"].tolist() == [True, False] and r.keep["test"].tolist() == [True]
    assert r.x["mfcc"]["train"].shape == (1, 140) and r.decoded == 1
    with np.load(os.path.join(cache, "mfcc.npz")) as z:  # retried next time: it may come back
        assert gone not in z["skip_paths"] and sorted(z["paths"]) == sorted(files[:2])


@pytest.mark.slow
def test_fma_from_audio_store_gives_the_tfds_builds_mfcc(tmp_path, small_weights_dir):
    """FMA extracted with from_audio = true: compare finds the mp3s with --manual-dir, and its mfcc vectors equal the
    ones compare makes from the TFDS build's stored log-mels (the same definition, the same audio)."""
    from mini_fma import make_mini_fma

    from vggish_jax.classify import features
    from vggish_jax.datasets import fma_metadata
    from vggish_jax.pipeline import store

    mini = make_mini_fma(tmp_path / "manual", per_genre_per_split=(2, 1, 1), seconds=3.0, genres=GENRES_FMA,
                         corrupt=False, short=False, known_bad=False)
    data, emb = str(tmp_path / "data"), str(tmp_path / "emb")
    common = ["--dataset", "fma/small", "--data-dir", data, "--manual-dir", mini.manual_dir, "--weights",
              small_weights_dir, "--workers", "0"]
    (tmp_path / "settings.toml").write_text("from_audio = true\n")
    assert cli.main(["extract", *common, "--out", emb, "--config", str(tmp_path / "settings.toml")]) == 0
    out = str(tmp_path / "cmp")
    lines = []
    report = cc.compare(emb, out,
                        cc.CompareSettings(feature_sets=("mean_std", "mfcc", "musicnn"), classifiers=("LR",),
                                           jobs=1, manual_dir=mini.manual_dir),
                        log=lines.append)
    assert report["feature_sets"] == ["mean_std", "mfcc", "musicnn"] and report["skipped"] == [], lines
    assert cli.main(["extract", *common, "--out", str(tmp_path / "emb_tfds")]) == 0  # builds the TFDS dataset
    splits = {s: store.load_split(emb, s) for s in cc.SPLITS}
    mels = cc.load_mels(data, "fma/small", {s: splits[s].track_ids for s in cc.SPLITS})
    vectors = cached(out, "mfcc")
    for s in cc.SPLITS:
        for tid, mel in zip(splits[s].track_ids, mels[s]):
            path = fma_metadata.audio_path(mini.audio_root, int(tid))
            np.testing.assert_allclose(vectors[path], features.mfcc_stats(mel), rtol=1e-6, atol=1e-6)
