"""Run under TensorFlow (CI's second venv): AudioSet-release-shaped TFRecords written by TensorFlow itself.

    python tests/tf_audioset_fixture.py OUT_DIR

OUT_DIR gets bal_train/*.tfrecord and eval/*.tfrecord (tf.train.SequenceExample + tf.io.TFRecordWriter, the
release's layout, random uint8 embeddings), a copy of tests/data/audioset's ontology.json and
class_labels_indices.csv, and expected.json: what was written, per file, record by record (video id, start,
end, class names, frame count, sha256 of the embedding bytes, and whether the record was then damaged).
Damage done after TensorFlow wrote the files: one data byte of a record of bal_train/corrupt.tfrecord is
flipped (its data checksum fails; the records after it stay readable), and eval/truncated.tfrecord loses
the last bytes of its final record.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "audioset")

# (video_id, start_s, class display names, frames); files in order.
FILES = {
    "bal_train/aa.tfrecord": [
        ("vidPop000a", 30.0, ["Music", "Pop music"], 10),
        ("vidMetal01", 0.0, ["Heavy metal"], 10),  # a sub-genre: its top-level genre is Rock music
        ("vidSpeech2", 10.0, ["Speech"], 10),  # no genre: dropped by every task
        ("vidPopRock", 40.0, ["Pop music", "Rock music"], 10),  # two genres: multi-label only
        ("vidShort04", 20.0, ["Jazz"], 6),  # a short segment
    ],
    "bal_train/corrupt.tfrecord": [
        ("vidJazz005", 0.0, ["Jazz"], 10),
        ("vidBroken6", 5.0, ["Jazz"], 10),  # damaged after writing
        ("vidTechno7", 60.0, ["Techno"], 10),  # Electronic music; kept although a record before it is bad
    ],
    "bal_train/bb.tfrecord": [
        ("vidBeatbx8", 0.0, ["Beatboxing"], 10),  # under Hip hop music and Vocal music: two genres
        ("vidClass09", 0.0, ["Opera"], 9),  # Classical music
        ("vidClass09", 10.0, ["Classical music"], 10),  # a second segment of the same video
        ("vidPop0010", 0.0, ["Pop music"], 10),
        ("vidRock011", 0.0, ["Grunge", "Punk rock"], 10),  # two sub-genres of one genre: single-label Rock
    ],
    "eval/ee.tfrecord": [
        ("evPop00001", 0.0, ["Pop music"], 10),
        ("evRock0002", 30.0, ["Rock music", "Music"], 10),
        ("evFolkJaz3", 0.0, ["Folk music", "Jazz"], 10),
    ],
    "eval/truncated.tfrecord": [
        ("evElect004", 0.0, ["House music"], 10),
        ("evCut00005", 0.0, ["Jazz"], 10),  # cut short after writing
    ],
}
DAMAGED = {"bal_train/corrupt.tfrecord": 1, "eval/truncated.tfrecord": 1}


def main(out: str) -> None:
    import tensorflow as tf

    with open(os.path.join(DATA, "class_labels_indices.csv"), newline="") as f:
        index = {r["display_name"]: int(r["index"]) for r in csv.DictReader(f)}
    rng = np.random.default_rng(19)
    expected = {}
    for rel, segs in FILES.items():
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rows = []
        with tf.io.TFRecordWriter(path) as w:
            for i, (vid, start, names, frames) in enumerate(segs):
                emb = rng.integers(0, 256, (frames, 128), dtype=np.uint8)
                ctx = tf.train.Features(feature={
                    "video_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[vid.encode()])),
                    "start_time_seconds": tf.train.Feature(float_list=tf.train.FloatList(value=[start])),
                    "end_time_seconds": tf.train.Feature(float_list=tf.train.FloatList(value=[start + 10.0])),
                    "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=[index[n] for n in names])),
                })
                fl = tf.train.FeatureLists(feature_list={"audio_embedding": tf.train.FeatureList(feature=[
                    tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.tobytes()])) for row in emb])})
                w.write(tf.train.SequenceExample(context=ctx, feature_lists=fl).SerializeToString())
                rows.append({"video_id": vid, "start_s": start, "end_s": start + 10.0, "classes": names,
                             "labels": [index[n] for n in names], "frames": frames,
                             "sha256": hashlib.sha256(emb.tobytes()).hexdigest(), "damaged": DAMAGED.get(rel) == i})
        expected[rel] = rows
    _flip_data_byte(os.path.join(out, "bal_train/corrupt.tfrecord"), DAMAGED["bal_train/corrupt.tfrecord"])
    path = os.path.join(out, "eval/truncated.tfrecord")
    os.truncate(path, os.path.getsize(path) - 20)
    for name in ("ontology.json", "class_labels_indices.csv"):
        shutil.copy(os.path.join(DATA, name), os.path.join(out, name))
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {out}")


def _flip_data_byte(path: str, record: int) -> None:
    """Flip one payload byte of record `record` (walking TF's framing: u64 length, u32 crc, data, u32 crc)."""
    with open(path, "r+b") as f:
        buf = bytearray(f.read())
        pos = 0
        for _ in range(record):
            pos += 16 + struct.unpack("<Q", buf[pos: pos + 8])[0]
        length = struct.unpack("<Q", buf[pos: pos + 8])[0]
        buf[pos + 12 + length // 2] ^= 0x5A
        f.seek(0)
        f.write(buf)


if __name__ == "__main__":
    main(sys.argv[1])
