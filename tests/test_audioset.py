"""AudioSet release reader and source against records TensorFlow wrote (tests/tf_audioset_fixture.py)."""
from __future__ import annotations

import hashlib
import os
import re
import struct

import numpy as np
import pytest

from audioset_fixture import expected, manual_dir
from vggish_jax import spec as spec_lib
from vggish_jax.datasets import audioset

GENRES_8 = ("Pop music", "Hip hop music", "Rock music", "Country", "Folk music", "Jazz", "Classical music",
            "Electronic music")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return manual_dir(tmp_path_factory.mktemp("as"))


def test_reader_matches_what_tensorflow_wrote_and_skips_damaged_records(release):
    for rel, rows in expected().items():
        path = os.path.join(release, rel)
        segs, bad = audioset.read_file(path)
        intact = [r for r in rows if not r["damaged"]]
        assert [s.video_id for s in segs] == [r["video_id"] for r in intact]
        for s, r in zip(segs, intact):
            assert (s.start_s, s.end_s, list(s.labels)) == (r["start_s"], r["end_s"], r["labels"])
            assert s.embedding.shape == (r["frames"], 128) and s.embedding.dtype == np.uint8
            assert hashlib.sha256(s.embedding.tobytes()).hexdigest() == r["sha256"]
        assert len(bad) == sum(r["damaged"] for r in rows)
        for b in bad:  # one line naming the file
            assert b.path == path and path in b.reason and "\n" not in b.reason
    # The record after the damaged one in corrupt.tfrecord is still read (the data checksum caught it).
    segs, bad = audioset.read_file(os.path.join(release, "bal_train/corrupt.tfrecord"))
    assert [s.video_id for s in segs] == ["vidJazz005", "vidTechno7"] and "checksum" in bad[0].reason
    segs, bad = audioset.read_file(os.path.join(release, "eval/truncated.tfrecord"))
    assert bad[0].kind == "truncated"


def test_damaged_length_header_ends_the_file_and_keeps_earlier_records(release, tmp_path):
    src = os.path.join(release, "bal_train/aa.tfrecord")
    buf = bytearray(open(src, "rb").read())
    second = 16 + struct.unpack("<Q", buf[:8])[0]
    buf[second + 3] ^= 0x01  # a length byte of record 1: its header checksum fails
    p = tmp_path / "x.tfrecord"
    p.write_bytes(bytes(buf))
    segs, bad = audioset.read_file(str(p))
    assert [s.video_id for s in segs] == ["vidPop000a"]
    assert len(bad) == 1 and "length checksum" in bad[0].reason and str(p) in bad[0].reason


def test_not_a_sequence_example_is_refused_with_the_file_named(tmp_path):
    import crc32c  # the framing written by hand, around a payload that is no SequenceExample

    def masked(b):
        c = crc32c.crc32c(b)
        return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    data = b"\xff\xff\xff"
    head = struct.pack("<Q", len(data))
    p = tmp_path / "bad.tfrecord"
    p.write_bytes(head + struct.pack("<I", masked(head)) + data + struct.pack("<I", masked(data)))
    segs, bad = audioset.read_file(str(p))
    assert segs == [] and len(bad) == 1 and str(p) in bad[0].reason


def test_genre_map_from_the_ontology(release):
    g = audioset.genre_map(os.path.join(release, "ontology.json"), os.path.join(release, "class_labels_indices.csv"))
    assert len(g.names) == 25 and set(GENRES_8) <= set(g.names)
    idx = {n: i for i, n in enumerate(g.names)}
    import csv
    with open(os.path.join(release, "class_labels_indices.csv")) as f:
        cls = {r["display_name"]: int(r["index"]) for r in csv.DictReader(f)}
    assert g.class_genres[cls["Heavy metal"]] == {idx["Rock music"]}
    assert g.class_genres[cls["Opera"]] == {idx["Classical music"]}
    assert g.class_genres[cls["Beatboxing"]] == {idx["Hip hop music"], idx["Vocal music"]}
    assert cls["Speech"] not in g.class_genres and cls["Music"] not in g.class_genres


def _by_split(ds):
    return {s: {seg.key: lab for seg, lab in zip(segs, labels)} for s, (segs, labels) in ds.splits.items()}


def test_single_label_task_keeps_segments_with_exactly_one_genre(release):
    ds = audioset.load(release, audioset.Task())
    names = ds.label_names
    got = _by_split(ds)
    train_val = {**got["train"], **got["validation"]}
    want = {"vidPop000a:30": "Pop music", "vidMetal01:0": "Rock music", "vidShort04:20": "Jazz",
            "vidJazz005:0": "Jazz", "vidTechno7:60": "Electronic music", "vidClass09:0": "Classical music",
            "vidClass09:10": "Classical music", "vidPop0010:0": "Pop music", "vidRock011:0": "Rock music"}
    assert {k: names[v] for k, v in train_val.items()} == want
    assert {k: names[v] for k, v in got["test"].items()} == {"evPop00001:0": "Pop music", "evRock0002:30": "Rock music",
                                                            "evElect004:0": "Electronic music"}
    assert [b.path for b in ds.skipped] == [os.path.join(release, "bal_train/corrupt.tfrecord"),
                                            os.path.join(release, "eval/truncated.tfrecord")]
    # Grouped by video: both segments of vidClass09 are on the same side.
    assert ("vidClass09:0" in got["validation"]) == ("vidClass09:10" in got["validation"])
    assert 1 <= len(got["validation"]) < len(train_val)
    # Deterministic: a second load splits the same way.
    assert _by_split(audioset.load(release, audioset.Task())) == got


def test_multilabel_and_restricted_classes(release):
    ds = audioset.load(release, audioset.Task(multilabel=True, classes=GENRES_8))
    assert ds.label_names == list(GENRES_8) and ds.multilabel
    got = {k: {GENRES_8[i] for i in np.flatnonzero(v)} for s in _by_split(ds).values() for k, v in s.items()}
    assert got["vidPopRock:40"] == {"Pop music", "Rock music"}
    assert got["vidBeatbx8:0"] == {"Hip hop music"}  # Vocal music is not among the 8
    assert got["evFolkJaz3:0"] == {"Folk music", "Jazz"}
    assert "vidSpeech2:10" not in got
    single = audioset.load(release, audioset.Task(classes=("Jazz", "Pop music")))
    keys = {seg.key for segs, _ in single.splits.values() for seg in segs}
    assert keys == {"vidPop000a:30", "vidShort04:20", "vidJazz005:0", "vidPop0010:0", "evPop00001:0"}
    with pytest.raises(ValueError, match="unknown genres.*Polka"):
        audioset.load(release, audioset.Task(classes=("Polka",)))


def test_a_split_that_no_chosen_clip_falls_in_is_refused_and_adding_a_listed_genre_works(release):
    # Jazz and Classical music clips are all in bal_train/ (4 single-genre clips, 3 videos): test would be empty.
    with pytest.raises(audioset.ReleaseError) as e:
        audioset.load(release, audioset.Task(classes=("Jazz", "Classical music")))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{release}: no clip labelled Jazz, Classical music for task "
                                              f"music_genre falls in the test split (clips per split: train ")
    n = re.search(r"train (\d+), validation (\d+), test 0;", msg)
    assert n and int(n[1]) + int(n[2]) == 4 and int(n[2]) >= 1
    assert msg.endswith("genres with clips in eval/ for this task: Electronic music 1, Pop music 1, Rock music 1; "
                        "add one of them to `classes` in the --config file")
    fixed = audioset.load(release, audioset.Task(classes=("Jazz", "Classical music", "Pop music")))
    assert all(len(segs) for segs, _ in fixed.splits.values())
    # A class missing from one split is accepted (scores cover the classes a split has): no eval clip is
    # Classical music, multi-label.
    multi = audioset.load(release, audioset.Task(multilabel=True, classes=("Jazz", "Classical music")))
    assert multi.splits["test"][1].tolist() == [[1, 0]]


def test_missing_ontology_names_the_file_and_the_fix(tmp_path):
    os.makedirs(tmp_path / "bal_train")
    with pytest.raises(audioset.ReleaseError, match="ontology.json: missing"):
        audioset.load(str(tmp_path))


def test_source_protocol_and_spec_refuses_mixing(release):
    from vggish_jax.pipeline.sources.audioset import AudioSetSource

    src = AudioSetSource(release, "music_genre_multilabel")
    assert src.payload == "embedding" and src.multilabel and len(src.label_names) == 25
    n = src.splits()
    assert set(n) == {"train", "validation", "test"} and n["test"] == 4
    clips = list(src.clips("test", range(n["test"])))
    assert [c.index for c in clips] == list(range(4)) and clips[2].key == "evFolkJaz3:0"
    assert clips[2].label.dtype == np.uint8 and clips[2].label.sum() == 2 and clips[2].data.shape == (10, 128)
    assert src.identity()["task"] == "music_genre_multilabel" and len(src.skipped()) == 2
    ours = spec_lib.EmbeddingSpec.create(weights_sha256="ab" * 32, final_relu=False, postprocess=True, dtype="uint8")
    with pytest.raises(spec_lib.SpecMismatch, match="model"):
        spec_lib.require_compatible(src.spec, ours, expected_from="audioset store", found_from="weights W")


@pytest.mark.slow
def test_experiment_script_end_to_end_on_the_fixture(release, tmp_path):
    """experiments/audioset_genres.py from the release files to report.md and a shipped head (tiny data)."""
    import json
    import subprocess
    import sys

    out, ship = tmp_path / "out", tmp_path / "ship"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "experiments", "audioset_genres.py"), "--manual-dir", release,
                        "--out", str(out), "--classifiers", "LR,NB,JAX-frames", "--members", "1", "--jobs", "1",
                        "--ship", str(ship)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "corrupt.tfrecord" in r.stderr  # the damaged record is reported, the rest used
    for task in ("genre25", "genre8", "multilabel25"):
        table = json.load(open(out / task / "table.json"))
        assert table["split_sizes"]["test"] == (4 if task == "multilabel25" else 3)
        assert (out / task / "class_balance.png").exists()
    assert "| genre25 |" in (out / "report.md").read_text()
    from vggish_jax.classify import heads
    assert len(heads.load_head(str(ship)).label_names) == 25
    prov = json.load(open(ship / "provenance.json"))
    assert prov["task"] == "genre25" and prov["split_sizes"]["train"] + prov["split_sizes"]["validation"] == 9
    final = json.load(open(out / "genre25" / "final.json"))  # chosen without test, refitted on train + validation
    assert final["refit"]["train_clips"] >= 9 and "test_accuracy" in final["refit"]


def test_extract_cli_writes_the_release_into_a_store_through_the_core(release, tmp_path, capsys):
    """`extract --dataset audioset` needs no weights: the stored rows are the release's bytes, the labels are
    the source's, the spec is the release's, and a rerun finds every shard done."""
    from vggish_jax import cli
    from vggish_jax.pipeline import store
    from vggish_jax.pipeline.sources.audioset import AudioSetSource

    out = str(tmp_path / "store")
    settings = os.path.join(os.path.dirname(out), "settings.toml")
    with open(settings, "w") as f:  # the audioset task and classes, and small shards, from a settings file
        f.write(f'task = "music_genre_multilabel"\nclasses = {list(GENRES_8)!r}\nshard_size = 3\n'.replace("'", '"'))
    argv = ["extract", "--dataset", "audioset", "--manual-dir", release, "--out", out, "--config", settings]
    assert cli.main(argv) == 0
    src = AudioSetSource(release, "music_genre_multilabel", GENRES_8)
    info = store.read_info(out)
    assert info["complete"] and info["multilabel"] and info["label_names"] == list(GENRES_8)
    assert store.spec_of(info, out) == src.spec
    for split, n in src.splits().items():
        got = store.load_split(out, split)
        want = list(src.clips(split, range(n)))
        assert list(got.keys) == [c.key for c in want]
        np.testing.assert_array_equal(got.labels, np.stack([c.label for c in want]))
        for e, c in zip(got.embeddings, want):
            np.testing.assert_array_equal(e, c.data)
            assert e.dtype == np.uint8
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "shards already done, 0 to compute" in capsys.readouterr().err
