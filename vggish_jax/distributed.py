"""Multi-host flags for `extract` and `finetune`: where the coordinator is, how many processes, which one this is.

`jax.distributed.initialize()` without arguments reads only JAX_COORDINATOR_ADDRESS from the environment (the
process count and id come from a cluster environment such as SLURM or a Cloud TPU), so on plain machines the
three values are passed to it explicitly. Start every process with the same command, e.g. on each host i of 2:

    vggish-jax extract ... --coordinator HOST0:1234 --num-processes 2 --process-id i

or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID instead of the flags.
"""
from __future__ import annotations

import os

ENV = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def add_arguments(parser) -> None:
    g = parser.add_argument_group("multi-host (one process per host; all three, or --distributed on a cluster)")
    g.add_argument("--coordinator", default=os.environ.get(ENV["coordinator"]), metavar="HOST:PORT",
                   help=f"address of process 0's coordinator service (default: ${ENV['coordinator']})")
    g.add_argument("--num-processes", default=os.environ.get(ENV["num_processes"]), metavar="N",
                   help=f"number of processes in the run (default: ${ENV['num_processes']})")
    g.add_argument("--process-id", default=os.environ.get(ENV["process_id"]), metavar="I",
                   help=f"this process, 0 .. N-1 (default: ${ENV['process_id']})")
    g.add_argument("--distributed", action="store_true",
                   help="let JAX find the coordinator, count and id itself (SLURM, Cloud TPU, ...)")


def settings(args) -> tuple[str, int, int] | None:
    """(coordinator, num_processes, process_id) from the flags, None for a single-process run; a one-line
    ValueError for a half-given or malformed setting."""
    given = {k: getattr(args, k, None) for k in ENV}
    given = {k: (v.strip() if isinstance(v, str) else v) or None for k, v in given.items()}
    if not any(given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        names = ", ".join(f"--{k.replace('_', '-')} (or ${ENV[k]})" for k in missing)
        raise ValueError(f"multi-host needs all of --coordinator, --num-processes and --process-id; missing {names}")
    try:
        n, i = int(given["num_processes"]), int(given["process_id"])
    except ValueError:
        raise ValueError(f"--num-processes and --process-id take whole numbers, got {given['num_processes']!r} "
                         f"and {given['process_id']!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--process-id must be in 0 .. {n - 1} for --num-processes {n}, got {i}")
    host, sep, port = given["coordinator"].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--coordinator takes HOST:PORT (process 0's address), got {given['coordinator']!r}")
    return given["coordinator"], n, i


def initialize(args) -> bool:
    """Join the multi-host run the flags describe, before any other JAX call; True if this is one."""
    found = settings(args)
    if found is None and not getattr(args, "distributed", False):
        return False
    import jax

    if found is None:  # --distributed alone: the cluster environment says where and who
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(*found)
    return True
