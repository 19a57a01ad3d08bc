"""`vggish-jax bench`: throughput benchmarks (vggish_jax/bench.py), or with `--suite device` the device check
(vggish_jax/bench_device.py: one budgeted process for an accelerator; `--dry-run` anywhere)."""
from vggish_jax import bench


def add_arguments(p) -> None:
    bench.add_arguments(p)
    p.add_argument("--suite", choices=("cpu", "device"), default="cpu",
                   help="cpu: the sections below, each in its own process; device: the device check")
    p.add_argument("--dry-run", action="store_true", help="device suite: small sizes, a width/16 VGGish, any backend")
    p.add_argument("--budget-s", type=float, default=None, help="device suite: skip what would start after this")


def run(args) -> int:
    if args.suite == "device":
        from vggish_jax import bench_device

        args.sections = args.sections or ",".join(bench_device.SECTIONS)
        return bench_device.run(args)
    return bench.run(args)
