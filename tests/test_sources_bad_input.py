"""Bad input in labelled sources (issue 28 items 5-7): each refusal or warning is one line naming the file, the
true reason and a fix, and each fix is followed here to show that it works.

Sources read no audio when opened, so empty files with audio names stand in for the clips.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from audioset_fixture import manual_dir
from vggish_jax.pipeline.sources.folder import Folder
from vggish_jax.pipeline.sources.labels_csv import LabelsCsv


def _csv(tmp_path, text: str | bytes, name: str = "labels.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def _labels(src: LabelsCsv) -> dict[str, str]:
    """{clip path relative to the CSV's folder: label name} over every split."""
    base = os.path.dirname(src.path)
    return {os.path.relpath(c.path, base): src.label_names[c.label]
            for split, n in src.splits().items() for c in src.clips(split, range(n))}


# -- item 5: repeated and conflicting rows, labels equal up to case or spaces, empty class folders ----------

def test_a_file_listed_twice_is_refused_naming_the_lines_and_first_keeps_the_first_row(tmp_path):
    text = "path,label\na.wav,rock\nb.wav,jazz\n./a.wav,jazz\nc.wav,pop\nc.wav,pop\n"
    path = _csv(tmp_path, text)
    with pytest.raises(ValueError) as e:
        LabelsCsv(path)
    msg = _one_line(e)
    assert msg.startswith(f"{path}: 2 files listed more than once")
    # ./a.wav and a.wav are one file; the conflicting labels and the line numbers are named.
    assert "a.wav on lines 2 (rock), 4 (jazz)" in msg and "c.wav on lines 5, 6 (pop)" in msg
    assert 'set on_duplicate = "first" in extract\'s --config file' in msg
    # The fix, followed: on_duplicate="first" keeps each file's first row ...
    src = LabelsCsv(path, on_duplicate="first")
    assert _labels(src) == {"a.wav": "rock", "b.wav": "jazz", "c.wav": "pop"}
    assert "2 repeated rows left out" in src.describe()
    assert src.identity() != LabelsCsv(_csv(tmp_path, "path,label\na.wav,rock\n", "other.csv")).identity()
    # ... and so does deleting the later rows.
    fixed = _csv(tmp_path, "path,label\na.wav,rock\nb.wav,jazz\nc.wav,pop\n", "fixed.csv")
    assert _labels(LabelsCsv(fixed)) == {"a.wav": "rock", "b.wav": "jazz", "c.wav": "pop"}
    with pytest.raises(ValueError, match="on_duplicate"):
        LabelsCsv(path, on_duplicate="last")


def test_the_same_file_in_two_splits_is_a_repeat(tmp_path):
    path = _csv(tmp_path, "path,label,split\na.wav,rock,train\nb.wav,jazz,train\na.wav,rock,test\n")
    with pytest.raises(ValueError, match=r"1 file listed more than once: a.wav on lines 2, 4 \(rock\)"):
        LabelsCsv(path)


def test_labels_are_stripped_and_labels_equal_up_to_case_are_named(tmp_path):
    path = _csv(tmp_path, "path,label\na.wav,rock \nb.wav, rock\nc.wav,Jazz\nd.wav,jazz\ne.wav,JAZZ\n")
    src = LabelsCsv(path)
    assert src.label_names == ["JAZZ", "Jazz", "jazz", "rock"]  # 'rock ' and ' rock' are 'rock'
    assert "surrounding spaces stripped from 2 labels" in src.describe()
    (warning,) = src.cautions
    assert warning.startswith(f"{path}: labels that differ only in case are separate classes: 'JAZZ', 'Jazz', "
                              f"'jazz'") and "normalize_labels" in warning and "\n" not in warning
    assert f"warning: {warning}" in src.describe().splitlines()
    # The fix, followed: normalize_labels lower-cases every label, so they are one class and nothing is said.
    fixed = LabelsCsv(path, normalize_labels=True)
    assert fixed.label_names == ["jazz", "rock"] and fixed.cautions == [] and "warning" not in fixed.describe()
    assert _labels(fixed) == {"a.wav": "rock", "b.wav": "rock", "c.wav": "jazz", "d.wav": "jazz", "e.wav": "jazz"}
    assert fixed.identity() != src.identity()  # a store's labels change with it: no resume across the two


def test_an_empty_class_folder_is_reported_and_a_folder_of_only_empty_classes_refused(tmp_path):
    root = tmp_path / "genres"
    for g, n in (("blues", 2), ("jazz", 0), ("rock", 1)):
        (root / g).mkdir(parents=True)
        for i in range(n):
            (root / g / f"{g}{i}.wav").touch()
    (root / "jazz" / "notes.txt").touch()  # not audio: the class folder is still empty
    (root / ".cache").mkdir()  # hidden: not a class
    src = Folder(str(root))
    assert src.label_names == ["blues", "rock"]
    (warning,) = src.cautions
    assert warning.startswith(f"{root / 'jazz'}: a class folder with no audio files") and "\n" not in warning
    assert f"warning: {warning}" in src.describe().splitlines()
    # The fix, followed: a file put in it makes it a class.
    (root / "jazz" / "j0.wav").touch()
    fixed = Folder(str(root))
    assert fixed.label_names == ["blues", "jazz", "rock"] and fixed.cautions == []
    # The other fix, followed: the folder removed.
    shutil.rmtree(root / "jazz")
    assert Folder(str(root)).cautions == []

    empty = tmp_path / "empty"
    for g in ("blues", "rock"):
        (empty / g).mkdir(parents=True)
    with pytest.raises(FileNotFoundError) as e:
        Folder(str(empty))
    msg = _one_line(e)
    assert msg.startswith(f"{empty}: holds no audio files") and "class folders blues, rock are empty" in msg
    (empty / "rock" / "r.wav").touch()
    assert Folder(str(empty)).label_names == ["rock"]


# -- item 6: encodings, header-only CSVs, empty cells ---------------------------------------------------

def test_a_csv_saved_by_excel_with_a_bom_is_read(tmp_path):
    path = _csv(tmp_path, "\ufeffpath,label\r\na.wav,rock\r\nb.wav,jazz\r\n".encode())
    assert _labels(LabelsCsv(path)) == {"a.wav": "rock", "b.wav": "jazz"}


def test_latin1_bytes_are_refused_naming_the_file_and_offset_and_a_utf8_copy_is_read(tmp_path):
    text = "path,label\na.wav,rock\nb.wav,électro\n"
    path = _csv(tmp_path, text.encode("latin-1"))
    with pytest.raises(ValueError) as e:
        LabelsCsv(path)
    msg = _one_line(e)
    offset = text.index("é")
    assert msg.startswith(f"{path}: not UTF-8 text (byte 0xe9 at offset {offset}, line 3)")
    assert "re-save it as UTF-8" in msg
    # The fix, followed: the iconv command it gives (or the same conversion in Python where iconv is absent).
    command = re.search(r"or (iconv [^)]*)\)", msg).group(1)
    utf8 = command.split(" > ")[1]
    if shutil.which("iconv"):
        subprocess.run(command, shell=True, check=True)
    else:
        _csv(tmp_path, open(path, "rb").read().decode("cp1252").encode("utf-8"), os.path.basename(utf8))
    assert _labels(LabelsCsv(utf8)) == {"a.wav": "rock", "b.wav": "électro"}


def test_header_only_and_empty_csvs_say_what_is_missing(tmp_path):
    path = _csv(tmp_path, "path,label\n")
    with pytest.raises(ValueError) as e:
        LabelsCsv(path)
    assert _one_line(e).startswith(f"{path}: has a header but no rows; add one row per audio file")
    empty = _csv(tmp_path, "", "empty.csv")
    with pytest.raises(ValueError) as e:
        LabelsCsv(empty)
    assert _one_line(e).startswith(f"{empty}: is empty; a labels CSV needs a header")
    # Following the fix: a row added is read; blank lines (an editor's trailing ones) are not rows.
    fixed = _csv(tmp_path, "path,label\na.wav,rock\n\n,\n", "fixed.csv")
    assert _labels(LabelsCsv(fixed)) == {"a.wav": "rock"}


@pytest.mark.parametrize("row,what", [(",rock", "path"), ("a.wav,", "label"), ("a.wav,  ", "label"),
                                      ("a.wav", "label")])
def test_a_row_with_an_empty_path_or_label_is_refused_naming_the_line(tmp_path, row, what):
    path = _csv(tmp_path, f"path,label\nb.wav,jazz\n{row}\nc.wav,pop\n")
    with pytest.raises(ValueError) as e:
        LabelsCsv(path)
    assert _one_line(e).startswith(f"{path}: line 3 has no {what}; fill in its {what} or delete the line")
    fixed = _csv(tmp_path, "path,label\nb.wav,jazz\na.wav,rock\nc.wav,pop\n", "fixed.csv")
    assert _labels(LabelsCsv(fixed)) == {"a.wav": "rock", "b.wav": "jazz", "c.wav": "pop"}


def test_header_names_are_read_without_surrounding_spaces(tmp_path):
    path = _csv(tmp_path, "path, label\na.wav, rock\n")
    assert _labels(LabelsCsv(path)) == {"a.wav": "rock"}


# -- item 7: AudioSet classes that match no clip, repeated classes --------------------------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return manual_dir(tmp_path_factory.mktemp("as"))


def test_audioset_classes_matching_no_clip_are_refused_listing_the_genres_that_have_clips(release):
    from vggish_jax.datasets import audioset
    from vggish_jax.pipeline.sources.audioset import AudioSetSource

    src = AudioSetSource(release, "music_genre", ["Reggae", "Hip hop music"])  # Hip hop only shares its clips
    with pytest.raises(audioset.ReleaseError) as e:
        src.splits()
    msg = _one_line(e)
    assert msg.startswith(f"{release}: no clip of this release is labelled Reggae, Hip hop music")
    assert "genres with clips for this task: Classical music 2, Electronic music 2, Jazz 2, Pop music 3, " \
           "Rock music 3" in msg
    # The fix, followed: a genre the message lists.
    # (Pop music: Jazz's 2 clips are all in bal_train/, so its test split would be empty and refused.)
    assert sum(AudioSetSource(release, "music_genre", ["Reggae", "Pop music"]).splits().values()) == 3
    # The multi-label task counts every clip carrying a genre, so Hip hop music has one there.
    multi = audioset.load(release, audioset.Task(True, ("Hip hop music", "Pop music")))
    assert sum(int(y[:, 0].sum()) for _, y in multi.splits.values()) == 1


def test_audioset_unknown_class_names_the_closest_genre(release):
    from vggish_jax.pipeline.sources.audioset import AudioSetSource

    with pytest.raises(ValueError) as e:
        AudioSetSource(release, "music_genre", ["jazz", "Pop music"]).splits()
    assert "unknown genres ['jazz'] (did you mean 'Jazz'?)" in _one_line(e)


def test_a_repeated_audioset_class_is_one_class(release):
    from vggish_jax.pipeline.sources.audioset import AudioSetSource

    src = AudioSetSource(release, "music_genre_multilabel", ["Jazz", "Pop music", "Jazz"])
    assert src.label_names == ["Jazz", "Pop music"] and src.identity()["classes"] == ["Jazz", "Pop music"]
    assert all(c.label.shape == (2,) for c in src.clips("test", range(src.splits()["test"])))


def test_cli_extract_of_audioset_classes_with_no_clip_exits_non_zero(release, tmp_path, capsys):
    from vggish_jax import cli
    from vggish_jax.pipeline import store

    out = tmp_path / "store"
    settings = tmp_path / "settings.toml"
    settings.write_text('classes = ["Reggae"]\n')
    rc = cli.main(["extract", "--dataset", "audioset", "--manual-dir", release, "--out", str(out),
                   "--config", str(settings)])
    err = capsys.readouterr().err
    assert rc != 0
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert "no clip of this release is labelled Reggae" in line and "Pop music 3" in line
    with pytest.raises(Exception):
        store.read_info(str(out))


def test_cli_extract_of_a_csv_with_a_repeated_file_says_the_setting_and_the_setting_works(
        tmp_path, small_weights_dir, capsys):
    """The refusal names a --config setting; following it, through the CLI, extracts each file once."""
    import numpy as np
    import soundfile as sf

    from conftest import settings_toml, tone_mix
    from vggish_jax import cli
    from vggish_jax.pipeline import store

    for name, seed in (("a.wav", 0), ("b.wav", 1)):
        sf.write(tmp_path / name, tone_mix(1.2, 16000, seed=seed), 16000)
    path = _csv(tmp_path, "path,label\na.wav,rock\nb.wav,jazz\na.wav,pop\n")
    argv = ["extract", "--dataset", path, "--weights", small_weights_dir, "--out", str(tmp_path / "store"),
            "--workers", "0"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and 'set on_duplicate = "first" in extract\'s --config file' in err
    assert cli.main(argv + ["--config", settings_toml(tmp_path, 'on_duplicate = "first"\n')]) == 0, \
        capsys.readouterr().err
    split = store.load_split(str(tmp_path / "store"), "all")
    assert list(split.keys) == [os.path.realpath(tmp_path / "a.wav"), os.path.realpath(tmp_path / "b.wav")]
    assert list(split.labels) == [1, 0] and store.read_info(str(tmp_path / "store"))["label_names"] == ["jazz", "rock"]
    assert np.all(np.isfinite(split.embeddings[0]))
