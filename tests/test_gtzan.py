"""GTZAN's fault-filtered split: a folder with GTZAN's names is detected, and `--split gtzan-filtered` takes
train/validation/test from the shipped lists (read here independently, as plain text)."""
from __future__ import annotations

import json
import os

import pytest
import soundfile as sf

from conftest import settings_toml, tone_mix
from vggish_jax import cli
from vggish_jax.pipeline import store
from vggish_jax.pipeline.sources import gtzan
from vggish_jax.pipeline.sources.folder import Folder

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vggish_jax", "assets", "gtzan")


def read_lists():
    """{split: ['blues/blues.00012', ...]}: the shipped files, parsed here without the package."""
    names = {"train": "train_filtered.txt", "validation": "valid_filtered.txt", "test": "test_filtered.txt"}
    return {s: [line.strip().rsplit(".", 1)[0] for line in open(os.path.join(ASSETS, n)) if line.strip()]
            for s, n in names.items()}


def test_shipped_lists_are_the_published_partition():
    lists = read_lists()
    assert {s: len(v) for s, v in lists.items()} == {"train": 443, "validation": 197, "test": 290}
    every = [x for v in lists.values() for x in v]
    assert len(set(every)) == 930 and {x.split("/")[0] for x in every} == set(GENRES)
    assert os.path.exists(os.path.join(ASSETS, "SOURCE.md"))


@pytest.fixture()
def full_tree(tmp_path):
    """All 1000 GTZAN names (jazz as .au, the rest .wav; empty files: the source only lists them), less one
    listed file."""
    root = tmp_path / "genres"
    missing = read_lists()["validation"][0]
    for g in GENRES:
        (root / g).mkdir(parents=True)
        for i in range(100):
            if f"{g}/{g}.{i:05d}" != missing:
                (root / g / f"{g}.{i:05d}.{'au' if g == 'jazz' else 'wav'}").touch()
    return root, missing


def test_source_splits_follow_the_lists(full_tree):
    root, missing = full_tree
    folder = Folder(str(root))
    assert folder.gtzan and "--split gtzan-filtered" in folder.describe()
    src = gtzan.GtzanFiltered(folder)
    lists = read_lists()
    for split, stems in lists.items():
        want = [s for s in stems if s != missing]
        got = list(src.clips(split, range(src.splits()[split])))
        assert [os.path.relpath(c.path, root).rsplit(".", 1)[0] for c in got] == want
        assert [c.label for c in got] == [GENRES.index(s.split("/")[0]) for s in want]
        assert all(c.path.endswith(".au") == ("/jazz/" in c.path) for c in got)
    assert src.splits() == {"train": 443, "validation": 196, "test": 290}
    (skip,) = src.skipped()
    assert skip.kind == "missing" and skip.path == str(root / (missing + ".wav")) and "\n" not in skip.reason
    assert "70 files not in the lists left out" in src.describe() and "1 listed files missing" in src.describe()


def test_a_folder_without_gtzan_names_is_not_gtzan(full_tree):
    root, _ = full_tree
    (root / "blues" / "my_song.wav").touch()
    folder = Folder(str(root))
    assert not folder.gtzan and "--split" not in folder.describe()
    with pytest.raises(ValueError, match=r"--split gtzan-filtered needs GTZAN's layout .* drop --split"):
        gtzan.GtzanFiltered(folder)


def test_cli_extract_gtzan_filtered_then_compare(tmp_path, small_weights_dir, capsys):
    """A few real GTZAN names per genre as 1-s tones: one listed in train, one in validation or test, one not
    listed where GTZAN has one (8 genres); extract with --split gtzan-filtered gives the lists' splits; compare runs on it in split mode."""
    lists = read_lists()
    listed = {x for v in lists.values() for x in v}
    root = tmp_path / "genres"
    want = {s: [] for s in lists}
    for c, g in enumerate(GENRES):
        (root / g).mkdir(parents=True)
        other = "validation" if c % 2 else "test"
        picks = [next(x for x in lists["train"] if x.startswith(g + "/")),
                 next(x for x in lists[other] if x.startswith(g + "/"))]
        picks += [f"{g}/{g}.{i:05d}" for i in range(100) if f"{g}/{g}.{i:05d}" not in listed][:1]  # blues, rock: none
        for j, name in enumerate(picks):
            sf.write(root / f"{name}.wav", tone_mix(1.0, 16000, seed=10 * c + j), 16000)
        want["train"].append(picks[0])
        want[other].append(picks[1])
    out = tmp_path / "emb"
    assert cli.main(["extract", "--dataset", str(root), "--split", "gtzan-filtered", "--weights", small_weights_dir,
                     "--out", str(out), "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "train 10, validation 5, test 5 files; 8 files not in the lists left out; 910 listed files missing" in err
    for split, names in want.items():
        s = store.load_split(str(out), split)
        order = [x for x in lists[split] if x in names]  # the lists' order
        assert list(s.keys) == [os.path.realpath(root / f"{x}.wav") for x in order]
        assert list(s.labels) == [GENRES.index(x.split("/")[0]) for x in order]
    info = json.load(open(out / "info.json"))
    assert info["label_names"] == GENRES and sum(k["kind"] == "missing" for k in info["skipped"]) == 910
    assert cli.main(["compare", "--embeddings", str(out), "--out", str(tmp_path / "cmp"), "--features", "mean_std",
                     "--classifiers", "NB", "--config", settings_toml(tmp_path, "jobs = 1\n")]) == 0
    assert json.load(open(tmp_path / "cmp" / "table.json"))["split_sizes"] == {"train": 10, "validation": 5,
                                                                              "test": 5}
    # --split on a folder that is not GTZAN: one line, and what to do
    capsys.readouterr()
    (root / "blues" / "extra.wav").write_bytes((root / f"{want['train'][0]}.wav").read_bytes())
    assert cli.main(["extract", "--dataset", str(root), "--split", "gtzan-filtered", "--weights", small_weights_dir,
                     "--out", str(tmp_path / "x"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "drop --split" in err
