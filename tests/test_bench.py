"""Smoke test only: `vggish-jax bench --quick` runs its cheaper sections and writes valid JSON + markdown."""
import glob
import json
import os

import pytest

from vggish_jax import bench
from vggish_jax import cli


def test_flops_per_frame_from_the_architecture():
    # conv MACs per layer (H x W x 9 x Cin x Cout) + dense MACs, by hand from the reference architecture
    macs = (96 * 64 * 9 * 1 * 64 + 48 * 32 * 9 * 64 * 128 + 24 * 16 * 9 * 128 * 256 + 24 * 16 * 9 * 256 * 256
            + 12 * 8 * 9 * 256 * 512 + 12 * 8 * 9 * 512 * 512 + 12288 * 4096 + 4096 * 4096 + 4096 * 128)
    assert bench.flops_per_frame() == 2 * macs
    assert 1.70e9 < bench.flops_per_frame() < 1.75e9


def test_bench_quick_writes_json(tmp_path, capsys):
    assert cli.main(["bench", "--quick", "--sections", "matmul,frontend", "--out", str(tmp_path)]) == 0
    (path,) = glob.glob(os.path.join(tmp_path, "bench-*-quick.json"))
    report = json.load(open(path))
    assert set(report["sections"]) == {"matmul", "frontend"}
    assert report["machine"]["cores"] >= 1 and report["machine"]["versions"]["jax"]
    assert report["sections"]["matmul"]["jax_gflops"] > 0
    fe = report["sections"]["frontend"]
    assert fe["numpy"]["audio_seconds_per_second"] > 0 and fe["peak_rss_mb"] > 0
    assert report["summary"]["frontend_jax_vs_numpy"] > 0
    assert os.path.exists(path[:-5] + ".md")


@pytest.mark.slow
def test_bench_quick_end_to_end_reports_the_bound_and_jax_free_workers(tmp_path):
    assert cli.main(["bench", "--quick", "--sections", "decode,end_to_end", "--out", str(tmp_path),
                     "--name", "test"]) == 0
    (path,) = glob.glob(os.path.join(tmp_path, "bench-test-*-quick.json"))
    report = json.load(open(path))
    dec, e2e = report["sections"]["decode"], report["sections"]["end_to_end"]
    assert dec["worker_imports_jax"] is False and e2e["worker_imports_jax"] is False
    assert dec["resample"]["host_s_per_clip_one_core"] > 0 and dec["resample"]["device_s_per_clip"] > 0
    per = e2e["seconds_per_clip"]
    assert set(per) == {"decode_resample", "frontend", "model", "device", "e2e", "e2e_embedder"}
    assert all(v > 0 for v in per.values())
    assert 0 < e2e["frontend_share_of_device_time"] < 1 and e2e["end_to_end_vs_bound"] > 0
    md = open(path[:-5] + ".md").read()
    assert "Sum-of-parts bound" in md
