"""The AudioSet-release fixture: TFRecords written by TensorFlow (tests/tf_audioset_fixture.py).

CI writes them afresh (VGGISH_JAX_AUDIOSET_FIXTURE, set by .ci/run); otherwise the copy that the same script
wrote into tests/data/audioset/release is used. `manual_dir(tmp)` lays them out as the release is unpacked:
bal_train/, eval/, ontology.json, class_labels_indices.csv.
"""
from __future__ import annotations

import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "audioset")
WRITTEN = os.environ.get("VGGISH_JAX_AUDIOSET_FIXTURE") or os.path.join(DATA, "release")


def manual_dir(tmp) -> str:
    out = os.path.join(str(tmp), "audioset_v1_embeddings")
    if not os.path.isdir(out):
        for sub in ("bal_train", "eval"):
            shutil.copytree(os.path.join(WRITTEN, sub), os.path.join(out, sub))
        for name in ("ontology.json", "class_labels_indices.csv"):
            shutil.copy(os.path.join(DATA, name), os.path.join(out, name))
    return out


def expected() -> dict:
    with open(os.path.join(WRITTEN, "expected.json")) as f:
        return json.load(f)
