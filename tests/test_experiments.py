"""The paper's experiment scripts end to end on mini data, run as a user runs them (subprocesses):
experiments/fma_paper.py on a generated mini-FMA with a small random VGGish, and experiments/audioset_genres.py
on the TensorFlow-written mini AudioSet release."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from audioset_fixture import manual_dir
from conftest import SMALL_WIDTH_DIVISOR, finished_shards
from mini_fma import make_mini_fma

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The seed paper's test accuracies (%), as printed in it.
PAPER = {"embedding+pca128 SVCrbf": "56.75", "fine-tuned": "53.4", "mfcc SVCrbf": "46.38"}


def run_script(name: str, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", name), *args], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == expect, r.stderr[-3000:]
    return r


def assert_png(path: str) -> None:
    """A complete PNG: signature, every chunk's CRC, IHDR size > 0, and IDAT inflating to its rows."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body), path
        chunks.append(kind)
        idat += body if kind == b"IDAT" else b""
        pos += 12 + n
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", path
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    assert width > 0 and height > 0 and depth == 8
    assert len(zlib.decompress(idat)) == height * (1 + width * channels), path


def md_table(text: str, header: str) -> list[list[str]]:
    """The cells of the markdown table whose header row starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


@pytest.mark.slow
def test_fma_paper_end_to_end_on_mini_fma_and_a_rerun_reuses_the_store(tmp_path, small_weights_dir):
    mini = make_mini_fma(tmp_path / "manual", per_genre_per_split=(3, 1, 1), seconds=1.2, seed=2)
    out, data = str(tmp_path / "out"), str(tmp_path / "data")
    common = ["--manual-dir", mini.manual_dir, "--data-dir", data, "--weights", small_weights_dir, "--out", out,
              "--workers", "0", "--no-progress", "--batch-size", "8"]
    run_script("fma_paper.py", *common, "--classifiers", "LR,SVCrbf,NB", "--epochs", "2", "--jobs", "2",
               "--data-note", "generated mini-FMA (tests/mini_fma.py)")
    report = open(os.path.join(out, "report.md")).read()
    rows = md_table(report, "| model |")
    table = json.load(open(os.path.join(out, "table", "table.json")))
    cells = {(c["feature_set"], c["classifier"]): c for c in table["cells"]}
    metrics = [json.loads(l) for l in open(os.path.join(out, "finetune", "metrics.jsonl"))]
    epochs = [m for m in metrics if "epoch" in m]
    test = next(m for m in metrics if m.get("split") == "test")
    # The paper's column is the paper's numbers; ours is what table.json and metrics.jsonl hold.
    assert [r[1] for r in rows] == [PAPER["embedding+pca128 SVCrbf"], PAPER["fine-tuned"], PAPER["mfcc SVCrbf"], "-"]
    for row, key in ((rows[0], ("embedding+pca128", "SVCrbf")), (rows[2], ("mfcc", "SVCrbf"))):
        assert row[2:] == [pct(cells[key]["test_accuracy"]), pct(cells[key]["validation_accuracy"])]
    assert rows[1][2:] == [pct(test["test_accuracy"]), pct(max(m["val_accuracy"] for m in epochs))]
    best = max((c for c in table["cells"] if not c.get("error")), key=lambda c: c["validation_accuracy"])
    assert f"`{best['classifier']}` on `{best['feature_set']}`" in rows[3][0]
    assert rows[3][2] == pct(best["test_accuracy"])
    # Split sizes: the clips the mini-FMA made decodable (its corrupt, short and known-bad clips are skipped).
    want = [str(len(mini.expected_ids(s))) for s in ("train", "validation", "test")]
    sizes = {r[0]: r[1:] for r in md_table(report, "| used by |")}
    assert sizes["table (embeddings)"] == want and sizes["fine-tuning"] == want
    # Random weights and mini data are said plainly; the width came from the weights' metadata.
    assert "mean nothing about music" in report and "not the full FMA-small" in report
    assert json.load(open(os.path.join(out, "finetune", "config.json")))["width_divisor"] == SMALL_WIDTH_DIVISOR
    # Figure 7 draws one point per epoch of metrics.jsonl, at its validation accuracy.
    assert [m["epoch"] for m in epochs] == [1, 2]
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["stages"]["report"]["fig7"] == {"epoch": [1, 2], "val_accuracy": [m["val_accuracy"] for m in epochs]}
    assert run["stages"]["report"]["fig6"]["headline"] is True
    for fig in ("fig2_class_balance.png", "fig6_confusion_embedding_pca128_SVCrbf.png", "fig7_val_accuracy.png"):
        assert_png(os.path.join(out, fig))
    assert set(run["stages"]) == {"extract", "table", "finetune", "report"}

    # A second run reuses the store: no shard is rewritten.
    shards = finished_shards(os.path.join(out, "embeddings"))
    assert shards
    before = {p: os.stat(p).st_mtime_ns for p in shards}
    run_script("fma_paper.py", *common, "--stages", "extract,report", "--classifiers", "LR,SVCrbf,NB")
    assert {p: os.stat(p).st_mtime_ns for p in shards} == before
    extract = json.load(open(os.path.join(out, "run.json")))["stages"]["extract"]
    assert (extract["computed_shards"], extract["reused_shards"]) == (0, len(shards))
    assert md_table(open(os.path.join(out, "report.md")).read(), "| model |") == rows


def load_script(name: str):
    """An experiments/ script as a module (they are not installed), for the fast in-process checks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_exp_{name}", os.path.join(ROOT, "experiments", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fma_paper_help_and_one_line_errors(tmp_path, capsys):
    script = load_script("fma_paper")
    with pytest.raises(SystemExit):
        script.main(["--help"])
    usage = capsys.readouterr().out
    for word in ("--stages", "extract,table,finetune,report", "--epochs", "--set", "--width-divisor", "fig7_val",
                 "fig6_confusion", "report.md"):
        assert word in usage
    assert script.main(["--out", str(tmp_path / "o"), "--stages", "extract"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "fma_paper: the extract stage needs --manual-dir and --data-dir and --weights (or leave it out of --stages)")
    with pytest.raises(SystemExit) as e:
        script.main(["--out", str(tmp_path / "o"), "--stages", "extract,plot"])
    assert e.value.code == 2 and "unknown stages" in capsys.readouterr().err


@pytest.mark.slow
def test_audioset_genres_on_the_mini_release(tmp_path):
    from vggish_jax.classify import heads
    from vggish_jax.pipeline import store

    release, out = manual_dir(tmp_path / "as"), str(tmp_path / "out")
    r = run_script("audioset_genres.py", "--manual-dir", release, "--out", out, "--tasks", "genre25,multilabel25",
                   "--classifiers", "LR,NB,JAX-frames", "--features", "mean_std,frames", "--members", "2",
                   "--jobs", "1", "--ship", os.path.join(out, "ship"))
    # The release's damaged records are reported, each in one line naming its file.
    for name in ("corrupt.tfrecord", "truncated.tfrecord"):
        assert any(name in line and line.startswith("skipped ") for line in r.stderr.splitlines())
    rows = {row[0]: row for row in md_table(open(os.path.join(out, "report.md")).read(), "| task |")}
    assert set(rows) == {"genre25", "multilabel25"}
    for task, (m1, m2) in (("genre25", ("accuracy", "macro_f1")), ("multilabel25", ("mAP", "roc_auc"))):
        table = json.load(open(os.path.join(out, task, "table.json")))
        final = json.load(open(os.path.join(out, task, "final.json")))
        b, f, row = table["best"], final["refit"], rows[task]
        n = {s: len(store.load_split(os.path.join(out, "stores", task), s)) for s in ("train", "validation", "test")}
        assert table["split_sizes"] == n and row[1] == f"{n['train']}/{n['validation']}/{n['test']} (+0)"
        assert row[2] == f"{b['classifier']} on {b['feature_set']}: {b['validation_' + m1]:.4f} / {b['test_' + m1]:.4f}"
        assert row[3].startswith(f"{final['classifier']} on {final['feature_set']} (")
        assert row[5] == f"{m1} {f['test_' + m1]:.4f}, {m2.replace('_', '-')} {f['test_' + m2]:.4f}"
        assert_png(os.path.join(out, task, "class_balance.png"))
    assert rows["genre25"][6] == "0.572" and rows["multilabel25"][6] == "-"
    assert_png(os.path.join(out, "genre25", "confusion_best.png"))
    assert_png(os.path.join(out, "multilabel25", "per_class_ap.png"))
    # The shipped head is the one the table scored: loaded from its files, it scores the recorded test accuracy.
    prov = json.load(open(os.path.join(out, "ship", "provenance.json")))
    head = heads.load_head(os.path.join(out, "ship"))
    test = store.load_split(os.path.join(out, "stores", "genre25"), "test")
    acc = float(np.mean(head.predict_proba(test.embeddings).argmax(-1) == test.labels))
    assert prov["test"]["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert prov["split_sizes"]["test"] == len(test)


def test_audioset_genres_refuses_ship_without_the_head_it_copies(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        load_script("audioset_genres").main(["--manual-dir", str(tmp_path), "--out", str(tmp_path / "o"),
                                             "--tasks", "genre8", "--ship", str(tmp_path / "s")])
    assert e.value.code == 2 and "--ship copies genre25's JAX-frames head" in capsys.readouterr().err
