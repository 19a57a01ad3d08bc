"""`python -m benchmarks` (repository code, not installed): FLOP counting from the architecture, what the timer times, that every reported rate is the
count over the measured median (so a table cannot drift from its timings), the summary's choices, and (slow)
the peer section, whose embeddings must equal torchvggish's own on the same files."""
import glob
import json
import os
import subprocess
import sys
import tomllib

import pytest

from conftest import require
import setuptools

from benchmarks import common, throughput
from benchmarks.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_flops_per_frame_from_the_architecture():
    # conv MACs per layer (H x W x 9 x Cin x Cout) + dense MACs, by hand from the reference architecture
    macs = (96 * 64 * 9 * 1 * 64 + 48 * 32 * 9 * 64 * 128 + 24 * 16 * 9 * 128 * 256 + 24 * 16 * 9 * 256 * 256
            + 12 * 8 * 9 * 256 * 512 + 12 * 8 * 9 * 512 * 512 + 12288 * 4096 + 4096 * 4096 + 4096 * 128)
    assert common.flops_per_frame() == 2 * macs
    assert 1.70e9 < common.flops_per_frame() < 1.75e9


def test_timed_excludes_the_warm_up_call_and_orders_its_statistics():
    calls = []
    t = common.timed(lambda: calls.append(1), 4)
    assert len(calls) == 5 and t["repeats"] == 4  # one warm-up (compilation) call, not timed
    assert t["min_s"] <= t["median_s"] <= t["max_s"]


def test_summary_picks_the_fastest_batch_and_derives_ratios():
    rate = lambda fps: {"frames_per_second": fps, "gflops": fps * common.flops_per_frame() / 1e9}  # noqa: E731
    sections = {"matmul": {"jax_gflops": 200.0},
                "embedding": {"flax": {"float32": {8: rate(12.0), 16: rate(113.0), 64: rate(104.0)}},
                              "torch": {8: rate(50.0), 32: rate(90.0)}},
                "peer": {"vggish_jax_vs_torchvggish": 2.4, "max_relative_embedding_difference": 3e-5}}
    s = throughput.summarize(sections, {"jax_backend": "cpu"})
    assert s["embedding_best_batch"] == 16 and s["embedding_best_frames_per_second"] == 113.0
    assert s["embedding_fraction_of_matmul"] == pytest.approx(113.0 * 1.728e9 / 200e9, rel=1e-3)
    assert s["embedding_vs_torch"] == pytest.approx(113.0 / 90.0)
    assert s["vggish_jax_vs_torchvggish_pipeline"] == 2.4


def test_bench_quick_rates_are_counts_over_the_measured_medians(tmp_path):
    assert main(["--quick", "--sections", "matmul,frontend", "--out", str(tmp_path)]) == 0
    (path,) = glob.glob(os.path.join(tmp_path, "bench-*-quick.json"))
    report = json.load(open(path))
    assert set(report["sections"]) == {"matmul", "frontend"}
    assert report["machine"]["cores"] == os.cpu_count() and report["machine"]["versions"]["jax"]
    mm = report["sections"]["matmul"]
    assert mm["n"] == 2048 and mm["jax_gflops"] == pytest.approx(2 * 2048 ** 3 / mm["jax"]["median_s"] / 1e9)
    fe = report["sections"]["frontend"]
    assert sorted(fe["jax"]) == ["1", "8"]
    for b, r in fe["jax"].items():
        assert r["audio_seconds_per_second"] == pytest.approx(int(b) * 30.0 / r["median_s"])
    best = max(r["audio_seconds_per_second"] for r in fe["jax"].values())
    assert report["summary"]["frontend_jax_vs_numpy"] == pytest.approx(best / fe["numpy"]["audio_seconds_per_second"])
    md = open(path[:-5] + ".md").read()
    assert f"| frontend_jax_vs_numpy | {report['summary']['frontend_jax_vs_numpy']:.3g} |" in md


def test_unknown_section_is_refused(tmp_path, capsys):
    assert main(["--sections", "matmul,gpu", "--out", str(tmp_path)]) == 2
    assert "unknown sections ['gpu']" in capsys.readouterr().err


def test_the_command_runs_from_the_repository_root_and_offers_both_suites():
    r = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "--suite {cpu,device}" in r.stdout and "--dry-run" in r.stdout and "--quick" in r.stdout


def test_the_benchmarks_are_not_installed_with_the_package():
    """setuptools' own finder, with pyproject's [tool.setuptools.packages.find], picks what a wheel ships."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        find = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]
    shipped = setuptools.find_namespace_packages(ROOT, include=find["include"], exclude=find.get("exclude", ()))
    assert "vggish_jax" in shipped and "vggish_jax.models" in shipped
    assert not [p for p in shipped if p.split(".")[0] in ("benchmarks", "experiments", "tests")], shipped


@pytest.mark.slow
def test_peer_section_matches_torchvggish_embeddings(tmp_path):
    require("torchvggish", "the peer is torchvggish 0.2")
    r = throughput.section_peer(quick=True)
    assert r["files"] == 3 and len(r["seconds"]["torchvggish"]) == len(r["seconds"]["vggish_jax"]) == 1
    # same random weights through both pipelines: only resampy vs our resampler and float rounding differ
    assert r["max_relative_embedding_difference"] < 1e-3
    assert r["vggish_jax_vs_torchvggish"] == pytest.approx(r["median_s"]["torchvggish"] / r["median_s"]["vggish_jax"])


@pytest.mark.slow
def test_bench_quick_end_to_end_reports_the_bound_and_jax_free_workers(tmp_path):
    assert main(["--quick", "--sections", "decode,end_to_end", "--out", str(tmp_path),
                     "--name", "test"]) == 0
    (path,) = glob.glob(os.path.join(tmp_path, "bench-test-*-quick.json"))
    report = json.load(open(path))
    dec, e2e = report["sections"]["decode"], report["sections"]["end_to_end"]
    assert dec["worker_imports_jax"] is False and e2e["worker_imports_jax"] is False
    per = e2e["seconds_per_clip"]
    assert set(per) == {"decode_resample", "frontend", "model", "device", "e2e", "e2e_embedder"}
    bound = 1 / (per["decode_resample"] + per["frontend"] + per["model"])
    assert e2e["sum_of_parts_bound_clips_per_second"] == pytest.approx(bound)
    assert e2e["end_to_end_vs_bound"] == pytest.approx(1 / per["e2e"] / bound)
    assert e2e["frontend_share_of_device_time"] == pytest.approx(per["frontend"] / (per["frontend"] + per["model"]))
    md = open(path[:-5] + ".md").read()
    assert "Sum-of-parts bound" in md
