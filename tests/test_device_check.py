"""The device check's dry run (benchmarks/device.py, experiments/device_check.sh) on this machine's backend:
every section runs, names the device, counts what it embedded by the frontend's closed form, and keeps to
its time budget. The numbers themselves are not judged here (they are measurements, not behaviour)."""
import json
import os
import subprocess
import sys

import jax
import pytest

from benchmarks import common, device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ("matmul", "model", "fused", "stored_int16", "mp3")  # finetune, compile_cache: slow (compiles, processes)


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_check")
    return device.run_check(str(out), dry_run=True, only=FAST, log=lambda m: None), out


def test_dry_run_names_the_device_and_writes_json_and_markdown(dry):
    report, out = dry
    kind = jax.devices()[0].device_kind
    assert report["device"] == kind and report["dry_run"] is True
    (js,) = [p for p in os.listdir(out) if p.endswith(".json")]
    assert js == f"device-check-{device.device_name()}-dry-run.json"
    on_disk = json.load(open(out / js))
    assert set(on_disk["sections"]) == set(FAST)
    assert not [k for k, v in on_disk["sections"].items() if "error" in v or "skipped" in v]
    md = open(out / js.replace(".json", ".md")).read()
    assert kind in md
    for b in device.DRY.batches:  # one row per batch size, a cell per precision
        row = next(line for line in md.splitlines() if line.startswith(f"| {b} |"))
        assert row.count("|") == len(device.PRECISIONS) + 2


def test_dry_run_model_rows_cover_every_precision_and_batch(dry):
    model = dry[0]["sections"]["model"]
    assert model["flops_per_frame"] == common.flops_per_frame(device.DRY.width_divisor)
    for key in device.PRECISIONS:
        assert sorted(model[key]) == sorted(device.DRY.batches)
        for b, r in model[key].items():
            assert r["per_second"] == pytest.approx(b / r["median_s"])
            assert r["tflops"] == pytest.approx(r["per_second"] * model["flops_per_frame"] / 1e12)


def test_fused_and_stored_audio_embed_every_example(dry):
    sizes = device.DRY
    samples = int(16000 * sizes.clip_seconds)
    per_clip = 1 + (samples - 15600) // 15360  # 0.975-s windows every 0.96 s (the VGGish frontend)
    for name, dtype in (("fused", "float32"), ("stored_int16", "int16")):
        sec = dry[0]["sections"][name]
        assert sec["input_dtype"] == dtype and sec["frames"] == sizes.clips * per_clip
        assert 0 < sec["frontend_share_of_device_time"] < 1


def test_mp3_section_decodes_every_path_with_one_process_per_core(dry):
    mp3 = dry[0]["sections"]["mp3"]
    assert mp3["clips"] == device.DRY.mp3_clips and mp3["decode_processes"] == os.cpu_count()
    assert mp3["end_to_end_vs_decode_only"] == pytest.approx(
        mp3["end_to_end"]["clips_per_second"] / mp3["decode_only"]["clips_per_second"])


def test_flops_per_frame_of_the_width_divided_model():
    d = 16  # conv widths 64..512 and fc1 4096 divided by d; fc2 keeps its 128 outputs
    macs = (96 * 64 * 9 * 1 * 64 // d + 48 * 32 * 9 * (64 // d) * (128 // d) + 24 * 16 * 9 * (128 // d) * (256 // d)
            + 24 * 16 * 9 * (256 // d) ** 2 + 12 * 8 * 9 * (256 // d) * (512 // d) + 12 * 8 * 9 * (512 // d) ** 2
            + 6 * 4 * (512 // d) * (4096 // d) + (4096 // d) ** 2 + (4096 // d) * 128)
    assert common.flops_per_frame(d) == 2 * macs


def test_a_spent_budget_skips_sections_and_still_writes(tmp_path):
    report = device.run_check(str(tmp_path), dry_run=True, budget_s=0, log=lambda m: None)
    assert set(report["sections"]) == set(device.SECTIONS)
    assert all(v == {"skipped": "time budget"} for v in report["sections"].values())
    assert json.load(open(report["paths"][0]))["sections"] == report["sections"]


def test_unknown_section_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--suite", "device", "--dry-run",
                           "--sections", "modle", "--out", str(tmp_path)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown device-check sections ['modle']; choose from matmul,model" in proc.stderr


@pytest.mark.slow
def test_the_shell_script_dry_run_runs_every_section(tmp_path):
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])  # its python3: this venv's
    proc = subprocess.run(["bash", os.path.join(ROOT, "experiments", "device_check.sh"), "--dry-run"],
                          capture_output=True, text=True, env=dict(os.environ, OUT=str(tmp_path), PATH=path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (js,) = [p for p in os.listdir(tmp_path) if p.endswith(".json")]
    report = json.load(open(tmp_path / js))
    assert set(report["sections"]) == set(device.SECTIONS)
    assert not [k for k, v in report["sections"].items() if "error" in v or "skipped" in v]
    for dtype in ("float32", "bfloat16"):
        assert report["sections"]["finetune"][dtype]["1"]["loss_finite"] is True
    cache = report["sections"]["compile_cache"]
    assert set(cache) >= {"off", "cold", "warm"}
