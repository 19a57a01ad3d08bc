"""`python -m benchmarks` (from the repository root): the throughput sections (benchmarks/throughput.py, each in
its own process), or with `--suite device` the device check (benchmarks/device.py: one budgeted process for an
accelerator; `--dry-run` anywhere). Writes its results files under --out."""
from __future__ import annotations

import argparse
import sys

from vggish_jax.skips import one_line


def build_parser() -> argparse.ArgumentParser:
    from benchmarks import device, throughput

    ap = argparse.ArgumentParser(prog="python -m benchmarks", description="vggish-jax's benchmarks (run from the "
                                 "repository root): the throughput sections, or the device check with --suite device")
    ap.add_argument("--suite", choices=("cpu", "device"), default="cpu",
                    help="cpu: the throughput sections, each in its own process; device: the device check "
                         "(default: cpu)")
    ap.add_argument("--quick", action="store_true", help="cpu suite: small sizes, few repeats (smoke run)")
    ap.add_argument("--out", default="results",
                    help="folder for bench-<name>-<date>.json/.md or device-check-<device>.json/.md "
                         "(default: results)")
    ap.add_argument("--name", default=None, help="cpu suite: this machine's name in the file names "
                                                 "(default: the host name)")
    ap.add_argument("--sections", default=None,
                    help=f"comma-separated; cpu suite: from {','.join(throughput.SECTIONS)} (default: all but "
                         f"training, which needs ~12 GB); device suite: from {','.join(device.SECTIONS)} "
                         f"(default: all)")
    ap.add_argument("--dry-run", action="store_true", help="device suite: small sizes, a width/16 VGGish, any backend")
    ap.add_argument("--budget-s", type=float, default=None,
                    help=f"device suite: skip what would start after this many seconds "
                         f"(default: {device.FULL.budget_s:.0f}, dry run {device.DRY.budget_s:.0f})")
    return ap


def main(argv: list[str] | None = None) -> int:
    from benchmarks import device, throughput

    args = build_parser().parse_args(argv)
    try:
        if args.suite == "device":
            args.sections = args.sections or ",".join(device.SECTIONS)
            return device.run(args)
        return throughput.run(args)
    except (ValueError, OSError) as e:  # bad --sections, an unwritable --out: one line, no traceback
        print(f"python -m benchmarks: error: {one_line(str(e))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
