"""Bad input over every command: a non-zero exit (or a per-item skip), exactly one error line naming the file and
the fix, no traceback, and finished outputs left as they were. In-process (`cli.main`) except where noted."""
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import soundfile as sf

from vggish_jax import cli
from conftest import tone_mix
from vggish_jax.models.vggish import params as checkpoint
from vggish_jax.pipeline import store


def run_cli(capsys, argv):
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def digest(path):
    h = hashlib.sha256()
    for root, _, names in sorted(os.walk(path)) if os.path.isdir(path) else [("", [], [path])]:
        for n in sorted(names):
            with open(os.path.join(root, n), "rb") as f:
                h.update(n.encode() + f.read())
    return h.hexdigest()


def small_weights(directory, **drop):
    """A small saved tree (the load checks run before any shape check), optionally damaged."""
    rng = np.random.default_rng(0)
    checkpoint.save(directory, {f"layer{i}": {"kernel": rng.normal(size=(256, 256)).astype(np.float32)}
                                for i in range(4)}, metadata={"source": "random"})
    tree = os.path.join(directory, "params")
    if drop.get("truncate"):
        biggest = max((os.path.join(r, n) for r, _, ns in os.walk(tree) for n in ns), key=os.path.getsize)
        with open(biggest, "r+b") as f:
            f.truncate(os.path.getsize(biggest) // 3)
    if drop.get("manifest"):
        os.remove(os.path.join(tree, "manifest.ocdbt"))
    if drop.get("metadata"):
        os.remove(os.path.join(directory, "metadata.json"))
    if drop.get("legacy"):  # written before the file listing existed
        meta = json.load(open(os.path.join(directory, "metadata.json")))
        del meta["params_files"]
        json.dump(meta, open(os.path.join(directory, "metadata.json"), "w"))
    return str(directory)


@pytest.fixture(scope="module")
def world(tmp_path_factory, random_weights_dir, audio_files):
    d = tmp_path_factory.mktemp("matrix")
    w = {"weights": random_weights_dir, "good": audio_files["wav"], "corrupt": audio_files["corrupt"], "dir": str(d)}
    w["text_mp3"] = str(d / "notes.mp3")
    open(w["text_mp3"], "w").write("this is a text file, not audio\n" * 20)
    w["empty_dir"] = str(d / "nothing_here")
    os.makedirs(w["empty_dir"])
    open(os.path.join(w["empty_dir"], "readme.txt"), "w").write("no audio")
    w["silent"] = str(d / "silent.wav")
    sf.write(w["silent"], np.zeros(16000 * 4, np.float32), 16000)
    w["quiet"] = str(d / "quiet.wav")  # -70 dBFS peak noise: near-silent
    sf.write(w["quiet"], (10 ** (-70 / 20) * np.sign(np.random.default_rng(0).normal(size=16000 * 4))).astype(
        np.float32), 16000, subtype="FLOAT")
    w["music"] = str(d / "music")  # a folder with one good file
    os.makedirs(w["music"])
    sf.write(os.path.join(w["music"], "a.wav"), tone_mix(3.2, 16000), 16000)
    w["a_file"] = str(d / "occupied.txt")
    open(w["a_file"], "w").write("x")
    for name, damage in {"w_trunc": {"truncate": True}, "w_manifest": {"manifest": True},
                         "w_meta": {"metadata": True}}.items():
        w[name] = small_weights(d / name, **damage)
    # A 30-s mp3 cut in half, as an interrupted download leaves it.
    whole = d / "whole.mp3"
    sf.write(whole, tone_mix(30.0, 22050), 22050)
    w["cut_mp3"] = str(d / "cut.mp3")
    data = whole.read_bytes()
    open(w["cut_mp3"], "wb").write(data[: len(data) // 2])
    w["loud"] = str(d / "loud.wav")  # float samples x1000: peak far above full scale
    sf.write(w["loud"], 1000 * tone_mix(4.0, 16000), 16000, subtype="FLOAT")
    w["fifo"] = str(d / "pipe.wav")
    os.mkfifo(w["fifo"])
    w["dangling"] = str(d / "gone.wav")
    os.symlink(str(d / "deleted.wav"), w["dangling"])
    w["newline"] = str(d / "bad\nname.wav")
    open(w["newline"], "w").write("not audio\n" * 50)
    w["onesec"] = str(d / "onesec.wav")  # one 0.96-s frame
    sf.write(w["onesec"], tone_mix(1.2, 16000), 16000)
    w["shard_size_toml"] = str(d / "settings.toml")
    open(w["shard_size_toml"], "w").write("shard_size = -2\n")
    for key, text in (("jobs0", "jobs = 0"), ("batch0", "batch_size = 0"), ("workers_negative", "workers = -2")):
        w[key + "_toml"] = str(d / f"{key}.toml")
        open(w[key + "_toml"], "w").write(text + "\n")
    w["pth"] = str(d / "vggish-10086976.pth")
    open(w["pth"], "wb").write(b"not really a torch file")
    w["relu"] = str(d / "relu")  # an embed output made with the final ReLU (fad's default is without)
    w["relu_npz"] = os.path.join(w["relu"], "embeddings.npz")
    assert cli.main(["embed", w["music"], "--weights", w["weights"], "--out", w["relu"], "--final-relu", "yes"]) == 0
    # A finished embed output, to check that refused runs leave it untouched.
    w["done"] = str(d / "done")
    w["done_npz"] = os.path.join(w["done"], "embeddings.npz")
    assert cli.main(["embed", w["good"], "--weights", w["weights"], "--out", w["done"], "--batch-size", "4"]) == 0
    # A trained head for the VGGish path of predict.
    from vggish_jax import predict
    from vggish_jax.classify import heads
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 256)).astype(np.float32), np.arange(16) % 8
    from vggish_jax.pipeline.embed import load_pretrained
    spec = load_pretrained(random_weights_dir).spec
    w["head"] = heads.save_head(str(d / "head"), heads.train_head(
        x, y, x, y, list(predict.FMA_GENRES), heads.HeadConfig(max_epochs=1), weights=random_weights_dir,
        final_relu=False, spec=spec))
    # Issue 28 item 12: a 0.5-s file, a 300-character name, stores whose fixes were wrong.
    w["short"] = str(d / "half.wav")
    sf.write(w["short"], tone_mix(0.5, 16000), 16000)
    w["long_name"] = str(d / ("x" * 296 + ".wav"))  # cannot exist: one name over the 255-byte limit
    rng = np.random.default_rng(1)
    clips = [rng.normal(size=(3, 128)).astype(np.float32) for _ in range(6)]

    def a_store(name, split, labels, names, spec_dict):
        root = str(d / name)
        store.write_shard(store.shard_path(root, split, 0), np.arange(len(labels)), np.asarray(labels),
                          [c.astype(np.uint8) if spec_dict["dtype"] == "uint8" else c for c in clips[:len(labels)]])
        store.write_info(root, {"label_names": names, "embedding_spec": spec_dict, "complete": True,
                                "dataset": "folder", "splits": {split: {}}})
        return root
    w["cv_store"] = a_store("cv_store", "all", np.arange(6) % 8, list(predict.FMA_GENRES), spec.to_dict())
    w["one_class"] = a_store("one_class", "all", np.zeros(6, int), ["rock", "jazz"], spec.to_dict())
    from vggish_jax.datasets.audioset import RELEASE_SPEC
    w["release"] = a_store("release", "train", np.zeros(6, int), ["rock"], RELEASE_SPEC.to_dict())
    return w


# Weights without PCA params: the refusal names --postprocess as the need and the convert line that adds them.
FIX_PCA = (r"no PCA params, which --postprocess needs; .*"
           r"`vggish-jax convert --torch-weights \S+ --pca \S+ --out \S+ --overwrite`")
# (id, argv, text naming the file or option, regex of the fix, "fail" or "skip", paths that must not change)
CASES = [
    # embed
    ("embed-folder-without-audio", lambda w: ["embed", w["empty_dir"], "--weights", w["weights"], "--out",
                                             w["dir"] + "/e1"], "nothing_here", r"no audio files.*check the path",
     "fail", []),
    ("embed-postprocess-without-pca", lambda w: ["embed", w["good"], "--weights", w["weights"], "--out",
                                                w["done"], "--postprocess"], "weights", FIX_PCA,
     "fail", ["done_npz"]),
    ("embed-out-is-a-file", lambda w: ["embed", w["good"], "--weights", w["weights"], "--out", w["a_file"]],
     "occupied.txt", r"is a file, not a folder; choose another --out", "fail", ["a_file"]),
    ("embed-out-under-a-file", lambda w: ["embed", w["good"], "--weights", w["weights"], "--out",
                                         w["a_file"] + "/e"], "occupied.txt", r"is a file, so \S+ cannot be created",
     "fail", ["a_file"]),
    ("embed-out-unwritable", lambda w: ["embed", w["good"], "--weights", w["weights"], "--out", "/proc/e"],
     "/proc", r"cannot write here.*choose another --out", "fail", []),  # /proc: unwritable even for root
    ("embed-batch-size-0", lambda w: ["embed", w["good"], "--weights", w["weights"], "--out", "x",
                                     "--batch-size", "0"], "--batch-size", r"must be 1 or more", "fail", []),
    ("embed-batch-size-negative", lambda w: ["embed", w["good"], "--weights", w["weights"], "--out", "x",
                                            "--batch-size", "-3"], "--batch-size", r"must be 1 or more", "fail", []),
    ("embed-workers-negative", lambda w: ["embed", w["good"], "--weights", w["weights"], "--out", "x",
                                         "--workers", "-1"], "--workers", r"must be 0 or more", "fail", []),
    ("embed-text-renamed-mp3", lambda w: ["embed", w["text_mp3"], w["good"], "--weights", w["weights"], "--out",
                                         w["dir"] + "/skip", "--batch-size", "4"], "notes.mp3",
     r"not audio despite its name: re-encode or drop it", "skip", []),
    ("embed-missing-weights", lambda w: ["embed", w["good"], "--weights", w["dir"] + "/nowhere", "--out", "x"],
     "nowhere", r"vggish-jax convert --download torch", "fail", []),
    ("embed-truncated-weights", lambda w: ["embed", w["good"], "--weights", w["w_trunc"], "--out", "x"],
     "w_trunc/params/", r"truncated.*--overwrite", "fail", ["w_trunc"]),
    ("embed-weights-without-manifest", lambda w: ["embed", w["good"], "--weights", w["w_manifest"], "--out", "x"],
     "manifest.ocdbt", r"missing.*convert the weights again", "fail", []),
    ("embed-weights-without-metadata", lambda w: ["embed", w["good"], "--weights", w["w_meta"], "--out", "x"],
     "w_meta/metadata.json", r"missing.*convert the weights again", "fail", []),
    ("embed-other-settings-into-same-out", lambda w: ["embed", w["good"], "--weights", w["weights"], "--out",
                                                     w["done"], "--final-relu", "yes"], "done/embeddings.npz",
     r"final_relu: True .* vs False", "fail", ["done_npz"]),
    # predict
    ("predict-top-0", lambda w: ["predict", "--example", "--top", "0"], "--top", r"must be 1 or more", "fail", []),
    ("predict-top-negative", lambda w: ["predict", "--example", "--top", "-1"], "--top", r"must be 1 or more",
     "fail", []),
    ("predict-silent", lambda w: ["predict", w["silent"], "--example"], "silent.wav",
     r"digital silence.*check the file",
     "skip", []),
    ("predict-near-silent", lambda w: ["predict", w["quiet"], "--example"], "quiet.wav", r"-70 dBFS.*raise its level",
     "skip", []),
    ("predict-head-silent", lambda w: ["predict", w["silent"], w["good"], "--head", w["head"]], "silent.wav",
     r"silent or nearly so", "skip", []),
    ("predict-missing-head", lambda w: ["predict", w["good"], "--head", w["dir"] + "/nohead"], "nohead",
     r"vggish-jax compare", "fail", []),
    ("predict-folder-without-audio", lambda w: ["predict", w["empty_dir"]], "nothing_here", r"no audio files",
     "fail", []),
    ("predict-text-renamed-mp3", lambda w: ["predict", w["text_mp3"], "--example"], "notes.mp3",
     r"re-encode or drop it", "skip", []),
    # convert
    ("convert-out-is-a-file", lambda w: ["convert", "--random", "0", "--out", w["a_file"]], "occupied.txt",
     r"is a file.*another --out", "fail", ["a_file"]),
    ("convert-onto-existing-weights", lambda w: ["convert", "--random", "1", "--out", w["w_trunc"]], "w_trunc",
     r"holds converted weights already; pass --overwrite", "fail", ["w_trunc"]),
    ("convert-missing-input", lambda w: ["convert", "--torch-weights", w["dir"] + "/vggish.pth", "--out",
                                        w["dir"] + "/c1"], "vggish.pth", r"no such file.*check the path", "fail", []),
    ("convert-no-source", lambda w: ["convert", "--out", w["dir"] + "/c2"], "--torch-weights",
     r"give exactly one source", "fail", []),
    # extract
    ("extract-out-is-a-file", lambda w: ["extract", "--data-dir", w["dir"] + "/tfds", "--weights", w["weights"],
                                        "--out", w["a_file"]], "occupied.txt", r"is a file.*another --out", "fail",
     ["a_file"]),
    ("extract-out-unwritable", lambda w: ["extract", "--data-dir", w["dir"] + "/tfds", "--weights", w["weights"],
                                         "--out", "/proc/emb"], "/proc", r"cannot write here.*choose another --out",
     "fail", []),
    ("extract-batch-size-0", lambda w: ["extract", "--data-dir", "d", "--weights", "w", "--out", "o",
                                       "--batch-size", "0"], "--batch-size", r"must be 1 or more", "fail", []),
    ("extract-shard-size-negative", lambda w: ["extract", "--data-dir", "d", "--weights", "w", "--out", "o",
                                              "--config", w["shard_size_toml"]], "settings.toml: shard_size",
     r"must be 1 or more, got -2", "fail", []),
    ("extract-missing-manual-dir", lambda w: ["extract", "--data-dir", w["dir"] + "/tfds", "--weights", w["weights"],
                                             "--out", w["dir"] + "/ex", "--manual-dir", w["dir"] + "/fma_nowhere"],
     "fma_nowhere", r"point --manual-dir at the folder", "fail", []),
    ("extract-postprocess-without-pca", lambda w: ["extract", "--data-dir", w["dir"] + "/tfds", "--weights",
                                                  w["weights"], "--out", w["dir"] + "/ex", "--postprocess"],
     "weights", FIX_PCA, "fail", []),
    # compare
    ("compare-missing-embeddings", lambda w: ["compare", "--embeddings", w["dir"] + "/noemb", "--out",
                                             w["dir"] + "/cmp"], "noemb", r"vggish-jax extract", "fail", []),
    ("compare-out-is-a-file", lambda w: ["compare", "--embeddings", w["dir"], "--out", w["a_file"]], "occupied.txt",
     r"is a file.*another --out", "fail", ["a_file"]),
    ("compare-jobs-0", lambda w: ["compare", "--embeddings", w["dir"], "--out", w["dir"] + "/cmp", "--config",
                                 w["jobs0_toml"]], "jobs0.toml: jobs = 0", r"-1 for all cores", "fail", []),
    # finetune
    ("finetune-workdir-is-a-file", lambda w: ["finetune", "--data-dir", w["dir"] + "/tfds", "--weights", w["weights"],
                                             "--workdir", w["a_file"]], "occupied.txt", r"another --workdir", "fail",
     ["a_file"]),
    ("finetune-unknown-setting", lambda w: ["finetune", "--data-dir", w["dir"] + "/tfds", "--workdir",
                                           w["dir"] + "/ft", "--set", "bogus=1"], "bogus", r"use key=value with key in",
     "fail", []),
    ("finetune-without-weights", lambda w: ["finetune", "--data-dir", w["dir"] + "/tfds", "--workdir",
                                           w["dir"] + "/ft"], "--weights", r"--set init=random", "fail", []),
    # fad (when the command is installed)
    ("fad-missing-ref", lambda w: ["fad", w["dir"] + "/noref", w["music"], "--weights", w["weights"]], "noref",
     r"give a folder of audio", "fail", []),
    ("fad-batch-size-0", lambda w: ["fad", w["music"], w["music"], "--config", w["batch0_toml"]],
     "batch0.toml: batch_size = 0", r"must be 1 or more", "fail", []),
    ("fad-out-under-a-file", lambda w: ["fad", w["music"], w["music"], "--weights", w["weights"], "--out",
                                       w["a_file"] + "/r"], "occupied.txt", r"is a file, so \S+ cannot be created",
     "fail", ["a_file"]),
    ("fad-weights-without-metadata", lambda w: ["fad", w["music"], w["music"], "--weights", w["w_meta"]],
     "w_meta/metadata.json", r"convert the weights again", "fail", []),
    # round 3: true reasons, truncated files, one-line messages with the fix
    ("embed-truncated-mp3", lambda w: ["embed", w["cut_mp3"], w["good"], "--weights", w["weights"], "--out",
                                      w["dir"] + "/cut", "--batch-size", "4"], "cut.mp3",
     r"truncated: \d+ of the \d+ frames its header declares decode \(1\d\.\d s of 30\.0 s\); re-download", "skip", []),
    ("predict-truncated-mp3", lambda w: ["predict", w["cut_mp3"], "--example"], "cut.mp3", r"truncated: .*re-download",
     "skip", []),
    ("embed-fifo", lambda w: ["embed", w["fifo"], w["good"], "--weights", w["weights"], "--out", w["dir"] + "/f",
                             "--batch-size", "4"], "pipe.wav", r"is a FIFO \(named pipe\), not a regular file", "skip",
     []),
    ("embed-dangling-symlink", lambda w: ["embed", w["dangling"], w["good"], "--weights", w["weights"], "--out",
                                         w["dir"] + "/l", "--batch-size", "4"], "gone.wav",
     r"broken symbolic link \(points to .*deleted.wav.*fix or remove the link", "skip", []),
    ("embed-newline-in-name", lambda w: ["embed", w["newline"], w["good"], "--weights", w["weights"], "--out",
                                        w["dir"] + "/n", "--batch-size", "4"], "bad\\nname.wav",
     r"re-encode or drop it", "skip", []),
    ("embed-dash-file", lambda w: ["embed", "-dash.wav", "--weights", w["weights"], "--out", "x"], "-dash.wav",
     r"put -- before file names that start with '-' \(vggish-jax embed \[options\] -- -dash.wav\)", "fail", []),
    ("predict-dash-file", lambda w: ["predict", "-dash.wav"], "-dash.wav", r"put -- before file names", "fail", []),
    ("embed-weights-is-the-pth", lambda w: ["embed", w["good"], "--weights", w["pth"], "--out", "x"],
     "vggish-10086976.pth", r"convert it first \(`vggish-jax convert --torch-weights .*--out DIR`\) and pass --weights DIR",
     "fail", []),
    ("embed-weights-is-metadata-json", lambda w: ["embed", w["good"], "--weights", w["weights"] + "/metadata.json",
                                                 "--out", "x"], "metadata.json",
     r"pass the folder that holds it: --weights \S+weights", "fail", []),
    ("embed-weights-is-params-folder", lambda w: ["embed", w["good"], "--weights", w["weights"] + "/params", "--out",
                                                 "x"], "/params", r"pass the folder above it: --weights \S+weights",
     "fail", []),
    ("fad-one-frame-ref", lambda w: ["fad", w["onesec"], w["music"], "--weights", w["weights"]], "onesec.wav",
     r"^vggish-jax fad: error: REF .*1 embedding frame .*give more audio", "fail", []),
    ("fad-other-final-relu", lambda w: ["fad", w["music"], w["relu_npz"], "--weights", w["weights"]],
     "relu/embeddings.json",
     r"final_relu.*set final_relu = true in a --config file to embed the audio the way", "fail", []),
    # round 4 (issue 28 item 12): each fix offered works when followed (see the tests below the matrix)
    ("predict-head-short-file", lambda w: ["predict", w["short"], w["good"], "--head", w["head"]], "half.wav",
     r"0\.500 s of audio is shorter than one VGGish example \(0\.975 s\), the least predict can score; to score "
     r"it, pad the file with silence to 0\.975 s or more", "skip", []),
    ("fad-short-ref", lambda w: ["fad", w["short"], w["music"], "--weights", w["weights"]], "half.wav",
     r"FAD needs at least 2 frames \(about 2 s of audio\) per set: give more or longer audio, or set pad = true "
     r"in a --config file to zero-pad each short file to one frame \(then at least 2 such files\)", "fail", []),
    ("fad-audioset-release-store", lambda w: ["fad", w["release"], w["music"], "--weights", w["weights"]],
     "release", r"AudioSet's released embeddings, uint8 PCA codes.*FAD needs the float 128-d output.*compute FAD "
                r"from the audio itself", "fail", []),
    ("predict-embeddings-cv-store", lambda w: ["predict", "--head", w["head"], "--embeddings", w["cv_store"]],
     "cv_store", r"has no 'test' split to score the head on \(its splits: all\); .*give a store that has a test "
                 r"split", "fail", []),
    ("compare-one-class-store", lambda w: ["compare", "--embeddings", w["one_class"], "--out", w["dir"] + "/c1c"],
     "one_class", r"its 6 clips are all of one class \(rock\); a classifier needs clips of at least 2 classes: "
                  r"extract a dataset with two or more classes", "fail", []),
    ("embed-name-too-long", lambda w: ["embed", w["long_name"], w["good"], "--weights", w["weights"], "--out",
                                      w["dir"] + "/ntl", "--batch-size", "4"], "x" * 296 + ".wav",
     r"name too long for the file system \(300 bytes in one name.*shorten the name", "skip", []),
    ("predict-name-too-long", lambda w: ["predict", w["long_name"], "--example"], "x" * 296 + ".wav",
     r"name too long for the file system.*shorten the name", "skip", []),
    ("finetune-workers-negative", lambda w: ["finetune", "--data-dir", "d", "--workdir", "w", "--config",
                                            w["workers_negative_toml"]], "workers_negative.toml: workers = -2",
     r"must be 0 or more", "fail", []),
]


@pytest.mark.parametrize("name,argv,names,fix,kind,unchanged", CASES, ids=[c[0] for c in CASES])
def test_bad_input(world, capsys, monkeypatch, tmp_path, name, argv, names, fix, kind, unchanged):
    monkeypatch.chdir(tmp_path)  # relative outputs of refused runs land here
    before = {k: digest(world[k]) for k in unchanged}
    code, out, err = run_cli(capsys, argv(world))
    assert "Traceback" not in err and "Traceback" not in out
    if kind == "fail":
        assert code != 0
        lines = [line for line in err.splitlines() if "error" in line]
    else:
        assert code == 0  # the good file alongside went through
        lines = [line for line in err.splitlines() if line.startswith("skipped")]
    assert len(lines) == 1, err
    assert names in lines[0], lines[0]
    assert re.search(fix, lines[0]), lines[0]
    for k in unchanged:
        assert digest(world[k]) == before[k], f"{k} changed"
    if name == "embed-text-renamed-mp3":  # the good file is written, the bad one reported in the sidecar
        with np.load(world["dir"] + "/skip/embeddings.npz") as z:
            assert z.files == [world["good"]]
        assert list(json.load(open(world["dir"] + "/skip/embeddings.json"))["errors"]) == [world["text_mp3"]]


def test_folder_input_takes_its_audio_files_in_sorted_order(world, audio_files, tmp_path, capsys):
    folder = tmp_path / "music"
    (folder / "b").mkdir(parents=True)
    sf.write(folder / "b" / "2.wav", np.asarray(sf.read(audio_files["wav"])[0]), 44100)
    sf.write(folder / "1.flac", np.asarray(sf.read(audio_files["wav"])[0]), 44100)
    (folder / "cover.jpg").write_bytes(b"\xff\xd8")
    out = tmp_path / "e"
    code, _, err = run_cli(capsys, ["embed", str(folder), "--weights", world["weights"], "--out", str(out),
                                    "--batch-size", "4"])
    assert code == 0 and f"{folder}: 2 audio files" in err
    with np.load(out / "embeddings.npz") as z:
        assert z.files == [str(folder / "1.flac"), str(folder / "b" / "2.wav")]


def test_legacy_truncated_weights_one_line_in_a_real_process(tmp_path, audio_files):
    """Weights saved before the file listing: orbax fails; no tensorstore JSON, no late tracebacks."""
    weights = small_weights(tmp_path / "w", truncate=True, legacy=True)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "vggish_jax.cli", "embed", audio_files["wav"], "--weights", weights,
                        "--out", str(tmp_path / "x")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "tensorstore_spec" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read the checkpoint" in lines[0] and "--overwrite" in lines[0], r.stderr


@pytest.mark.parametrize("argv,missing", [(["--download", "torch"], "torch"),
                                          (["--tf-checkpoint", "m.ckpt"], "tensorflow")])
def test_convert_names_the_missing_reader_before_downloading(tmp_path, monkeypatch, capsys, argv, missing):
    import importlib.util

    from vggish_jax.models.vggish.convert import published

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    monkeypatch.setattr(published, "fetch", lambda *a, **k: pytest.fail("downloaded before checking the reader"))
    code, _, err = run_cli(capsys, ["convert", *argv, "--out", str(tmp_path / "w")])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and f"needs {missing}, which is not installed; pip install" in lines[0]
    assert not os.path.exists(tmp_path / "w")


def test_damaged_mp3s_print_one_line_each_in_a_real_process(world, audio_files, tmp_path):
    """mpg123's own "Note: Illegal Audio-MPEG-Header ... resync" chatter on fd 2 does not reach the user, neither
    when a file is opened nor when the damage is found while decoding (the middle of a song)."""
    song = tmp_path / "song.mp3"
    sf.write(song, tone_mix(20.0, 22050), 22050)
    data = bytearray(song.read_bytes())
    third = len(data) // 3
    data[third: third + 3000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = str(tmp_path / "damaged.mp3")
    open(damaged, "wb").write(bytes(data))
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "vggish_jax.cli", "predict", audio_files["corrupt"], world["text_mp3"],
                        damaged, world["good"]], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and world["good"] in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("skipped") for line in lines), r.stderr
    assert audio_files["corrupt"] in lines[0] and world["text_mp3"] in lines[1]
    assert damaged in lines[2] and "decoding failed" in lines[2]


def test_over_range_audio_warns_once_in_every_command_and_is_reported(world, capsys, tmp_path):
    """Float samples x1000 are used as given, but each command prints one warning naming the file and its peak,
    and the JSON reports of predict and fad list it."""
    peak = float(np.abs(sf.read(world["loud"], dtype="float32")[0]).max())  # the oracle: the file's own samples
    no_fad_inf = tmp_path / "settings.toml"
    no_fad_inf.write_text("fad_inf = false\n")
    runs = {"embed": ["embed", world["loud"], "--weights", world["weights"], "--out", str(tmp_path / "l"),
                      "--batch-size", "4"],
            "predict": ["predict", world["loud"], "--json"],
            "fad": ["fad", world["loud"], world["music"], "--weights", world["weights"], "--out",
                    str(tmp_path), "--config", str(no_fad_inf)]}
    for name, argv in runs.items():
        code, out, err = run_cli(capsys, argv)
        assert code == 0, (name, err)
        lines = [line for line in err.splitlines() if line.startswith("warning:")]
        assert len(lines) == 1, (name, err)
        assert world["loud"] in lines[0] and f"peak at {peak:.4g} (+{20 * np.log10(peak):.0f} dBFS)" in lines[0]
        if name == "predict":
            warned = json.loads(out)["warnings"]
        elif name == "fad":
            warned = [w for w in json.load(open(tmp_path / "fad.json"))["warnings"] if w["kind"] == "over_range"]
        else:
            continue
        assert [(w["kind"], w["path"]) for w in warned] == [("over_range", world["loud"])], name


@pytest.mark.parametrize("workers", [0, 1])
def test_over_range_audio_is_listed_in_extract_info(world, small_weights_dir, tmp_path, workers):
    """extract decodes in worker processes (workers >= 1) or in its own thread: either way the over-range file
    is embedded and listed under info.json's "warnings", once, with its path."""
    folder = tmp_path / "songs"
    folder.mkdir()
    loud = folder / "loud.wav"
    shutil.copy(world["loud"], loud)
    sf.write(folder / "fine.wav", tone_mix(2.0, 16000), 16000)
    out = tmp_path / "store"
    assert cli.main(["extract", "--dataset", str(folder), "--weights", small_weights_dir, "--out", str(out),
                     "--workers", str(workers)]) == 0
    info = json.load(open(out / "info.json"))
    assert info["num_clips"] == {"all": 2} and info["skipped"] == []
    assert [(w["kind"], w["path"]) for w in info["warnings"]] == [("over_range", os.path.realpath(loud))]


@contextlib.contextmanager
def unprivileged():
    """Run the block with the effective uid of `nobody` when root (root reads everything), so permission
    checks bite as they do for a user."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_dir():
    d = tempfile.mkdtemp()  # under /tmp, not pytest's private folder, so `nobody` can reach it
    os.chmod(d, 0o755)
    yield d
    for root, dirs, _ in os.walk(d):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
    shutil.rmtree(d)


def test_unreadable_entries_have_their_true_reasons_and_make_the_run_incomplete(shared_dir, capsys):
    tree = os.path.join(shared_dir, "tree")
    os.makedirs(os.path.join(tree, "sub"))
    good, hidden, locked = (os.path.join(tree, "a.wav"), os.path.join(tree, "sub", "b.wav"),
                            os.path.join(tree, "locked.wav"))
    for path in (good, hidden, locked):
        sf.write(path, tone_mix(4.0, 16000), 16000)  # longer than one 3-s MusiCNN patch
    os.chmod(os.path.join(tree, "sub"), 0)
    os.chmod(locked, 0)
    os.chmod(good, 0o644)
    from vggish_jax import audio

    # Everything predict imports is imported first: `nobody` may not be able to read the Python installation.
    assert run_cli(capsys, ["predict", good])[0] == 0
    with unprivileged():
        files, notes, skipped = audio.expand_inputs([tree])
        with pytest.raises(audio.UnreadableError, match=r"permission denied \(no read permission\)"):
            audio.load(locked)
        code, out, err = run_cli(capsys, ["predict", tree, "--json"])
    assert files == [good, locked]  # sorted; sub/b.wav could not be listed
    assert [(s.kind, s.path) for s in skipped] == [("unreadable", os.path.join(tree, "sub"))]
    assert "permission denied" in skipped[0].reason.lower() and "1 subfolders unreadable" in notes[0]
    report = json.loads(out)
    assert report["complete"] is False and [p["path"] for p in report["predictions"]] == [good]
    assert set(report["errors"]) == {locked, os.path.join(tree, "sub")}
    assert "permission denied" in report["errors"][locked]


def test_fad_of_a_set_with_itself_is_zero_and_fad_inf_never_negative(world, capsys, tmp_path):
    """REF = GEN = one 30-s file (31 frames in 128 dimensions): the exact FAD is 0; rounding below 0 is reported
    as 0 with its size; the few frames are warned about; a negative FAD-inf intercept is not a result."""
    song = str(tmp_path / "song.wav")
    sf.write(song, tone_mix(30.0, 16000), 16000)
    settings = tmp_path / "settings.toml"
    settings.write_text("bootstrap = 5\n")
    out = tmp_path / "r" / "fad.json"
    code, stdout, err = run_cli(capsys, ["fad", song, song, "--weights", world["weights"], "--out", str(out.parent),
                                         "--config", str(settings)])
    assert code == 0, err
    r = json.load(open(out))
    assert r["fad"] == 0.0 and r["numerics"]["clipped"] >= 0.0
    raw = r["numerics"]["mean_term"] + r["numerics"]["trace_term"]
    assert r["numerics"]["clipped"] == pytest.approx(max(0.0, -raw), abs=0) and abs(raw) < 1e-6
    assert [w["kind"] for w in r["warnings"]] == ["few_frames", "few_frames"]
    assert "31 frames in 128 dimensions" in r["warnings"][0]["reason"] and "more audio" in r["warnings"][0]["reason"]
    inf = r["fad_inf"]
    assert inf["value"] is None or inf["value"] >= 0
    if inf["value"] is None:
        assert inf["intercept"] < 0 and "FAD-inf not reported" in err
    assert not re.search(r"FAD(-inf)? -", stdout), stdout
    assert stdout.startswith("FAD 0 ")


@pytest.mark.parametrize("command,patch,says", [
    ("predict", "vggish_jax.predict.iter_predictions", "the predictions printed so far are complete, nothing else"),
    ("fad", "vggish_jax.fad.compute.evaluate", "no result was written"),
    ("embed", "vggish_jax.pipeline.core.run_shard", "finished work is kept; rerun the same command"),
])
def test_ctrl_c_says_what_is_true_for_each_command(world, capsys, monkeypatch, tmp_path, command, patch, says):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(patch, interrupted)
    argv = {"predict": ["predict", world["good"]],
            "fad": ["fad", world["music"], world["music"], "--weights", world["weights"]],
            "embed": ["embed", world["good"], "--weights", world["weights"], "--out", str(tmp_path / "i")]}[command]
    code, _, err = run_cli(capsys, argv)
    assert code == 130
    assert err.strip().splitlines()[-1] == f"vggish-jax {command}: interrupted; " + \
        __import__(f"vggish_jax.commands.{command}", fromlist=["ON_STOP"]).ON_STOP
    assert says in err


def _embed_peak_mb(world, batch_size: int) -> float:
    """`embed` of the good file in a fresh process; returns that process's peak memory (VmHWM) in MB."""
    code = ("import sys; from vggish_jax import cli; from benchmarks import common; rc = cli.main(sys.argv[1:]); "
            "print('PEAK', common.peak_rss_mb()); sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code, "embed", world["good"], "--weights", world["weights"],
                        "--out", world["dir"] + f"/bs{batch_size}", "--batch-size", str(batch_size)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return float(r.stdout.split("PEAK")[-1])


def test_huge_batch_size_does_not_pad_one_file_to_the_batch(world):
    """`--batch-size 100000` on one short file used to pad it to the whole batch (39 GB asked of XLA); a part-full
    batch is now padded only to the next power of two, so it costs about what the default batch does."""
    assert _embed_peak_mb(world, 100000) < 1.5 * _embed_peak_mb(world, 64)


def test_out_of_memory_names_the_batch_size(world, capsys, monkeypatch):
    """XLA's out-of-memory error (as raised on an accelerator) becomes one line naming --batch-size."""
    import jax

    def exhausted(args):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 39388589156 bytes.")

    monkeypatch.setattr("vggish_jax.commands.embed.run", exhausted)
    code, _, err = run_cli(capsys, ["embed", world["good"], "--weights", world["weights"], "--out",
                                    world["dir"] + "/oom", "--batch-size", "100000"])
    lines = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and "out of memory" in lines[0] and "lower --batch-size (it is 100000" in lines[0], err
    # fad takes batch_size from its --config file only, and says so.
    monkeypatch.setattr("vggish_jax.commands.fad.run", exhausted)
    settings = os.path.join(world["dir"], "oom.toml")
    open(settings, "w").write("batch_size = 4096\n")
    code, _, err = run_cli(capsys, ["fad", world["music"], world["music"], "--config", settings])
    assert code == 2 and "lower batch_size in a --config file (it is 4096; the default is 64)" in err, err


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MB tmpfs, full (needs root and mount; skipped elsewhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs to make a full disk")
    try:
        with open(mnt / "filler", "wb") as f:
            with contextlib.suppress(OSError):
                f.write(b"\0" * (2 << 20))
        yield str(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_names_the_path_and_what_was_kept(world, capsys, full_disk):
    out = os.path.join(full_disk, "e")
    code, _, err = run_cli(capsys, ["embed", world["good"], world["music"], "--weights", world["weights"],
                                    "--out", out, "--batch-size", "4"])
    lines = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert re.search(rf"error: {re.escape(full_disk)}/\S+: no space left on the device; free some space", lines[0])
    assert lines[0].endswith("finished work is kept; rerun the same command to resume")
    code, _, err = run_cli(capsys, ["convert", "--random", "0", "--out", os.path.join(full_disk, "w")])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{full_disk}: 0 MB free, but the weights need about 289 MB; free some space or choose another --out" in err
    assert not [n for n in os.listdir(full_disk) if n.startswith((".w.", "w"))]  # no half-written weights


# ---- issue 28 item 12: following each fix the rows above offer ----

def test_predict_short_file_fix_pad_the_file_works(world, capsys, tmp_path):
    x, sr = sf.read(world["short"], dtype="float32")
    padded = str(tmp_path / "padded.wav")
    sf.write(padded, np.pad(x, (0, int(0.975 * sr) + 1 - len(x))), sr)  # silence to 0.975 s, as the line says
    code, out, err = run_cli(capsys, ["predict", padded, "--head", world["head"]])
    assert code == 0 and out.startswith(padded + ": ") and "skipped" not in err, err


def test_fad_short_ref_fix_pad_in_a_config_file_gives_one_frame_per_file(world, capsys, tmp_path):
    settings = tmp_path / "s.toml"
    settings.write_text("pad = true\n")
    # One 0.5-s file padded is one frame: still too few, as the message said ("then at least 2 such files").
    code, _, err = run_cli(capsys, ["fad", world["short"], world["music"], "--weights", world["weights"],
                                    "--config", str(settings)])
    assert code != 0 and "Traceback" not in err
    assert re.search(r"half\.wav.*: 1 embedding frame .*needs at least 2", err.strip().splitlines()[-1]), err
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.wav", "b.wav"):
        shutil.copy(world["short"], two / name)
    code, out, err = run_cli(capsys, ["fad", str(two), world["music"], "--weights", world["weights"],
                                      "--config", str(settings), "--out", str(tmp_path / "r")])
    assert code == 0, err
    result = json.load(open(tmp_path / "r" / "fad.json"))
    assert result["ref"]["frames"] == 2 and result["ref"]["files"] == 2 and np.isfinite(result["fad"])


def test_predict_embeddings_fix_a_store_with_a_test_split_works(world, capsys, tmp_path):
    root = str(tmp_path / "with_test")
    shutil.copytree(world["cv_store"], root)
    os.rename(os.path.join(root, "all"), os.path.join(root, "test"))
    code, out, err = run_cli(capsys, ["predict", "--head", world["head"], "--embeddings", root, "--json"])
    assert code == 0, err
    assert json.loads(out)["split"] == "test" and json.loads(out)["clips"] == 6


def test_compare_one_class_fix_two_classes_runs(world, capsys, tmp_path):
    root = str(tmp_path / "two_classes")
    rng = np.random.default_rng(2)
    labels = np.arange(10) % 2
    store.write_shard(store.shard_path(root, "all", 0), np.arange(10), labels,
                      [rng.normal(labels[i], 0.1, size=(2, 128)).astype(np.float32) for i in range(10)])
    info = json.load(open(os.path.join(world["one_class"], store.INFO)))
    store.write_info(root, {**info, "splits": {"all": {}}})
    code, out, err = run_cli(capsys, ["compare", "--embeddings", root, "--out", str(tmp_path / "c"),
                                      "--features", "embedding", "--classifiers", "LR"])
    assert code == 0, err
    assert json.load(open(tmp_path / "c" / "table.json"))["best"]["classifier"] == "LR"


def test_embed_beside_a_running_extract_names_the_writer(world, capsys, tmp_path, monkeypatch):
    out = str(tmp_path / "cc2")
    shutil.copytree(world["one_class"], out)  # an extract store
    monkeypatch.setattr(sys, "argv", ["vggish-jax", "extract", "--out", out])
    with store.locked(out):  # the running extract (this process: alive)
        monkeypatch.setattr(sys, "argv", ["pytest"])
        code, _, err = run_cli(capsys, ["embed", world["good"], "--weights", world["weights"], "--out", out])
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert (f"{out}: holds an extract store, another run is writing it (pid {os.getpid()} on "
            f"{socket.gethostname()} running `vggish-jax extract --out {out}`, lock ") in err
    assert "other settings" not in err and "choose another --out for embed" in err
    assert not os.path.exists(os.path.join(out, "embeddings.npz"))
    # The fix: another --out.
    code, _, err = run_cli(capsys, ["embed", world["good"], "--weights", world["weights"], "--out",
                                    str(tmp_path / "elsewhere")])
    assert code == 0, err


def test_a_name_too_long_is_skipped_with_its_kind_and_the_batch_goes_on(world, capsys, tmp_path):
    out = str(tmp_path / "e")
    code, _, err = run_cli(capsys, ["embed", world["long_name"], world["good"], "--weights", world["weights"],
                                    "--out", out, "--batch-size", "4"])
    assert code == 0, err
    side = json.load(open(os.path.join(out, "embeddings.json")))
    assert [s["kind"] for s in side["skipped"]] == ["name_too_long"]
    with np.load(os.path.join(out, "embeddings.npz")) as z:
        assert z.files == [world["good"]]
