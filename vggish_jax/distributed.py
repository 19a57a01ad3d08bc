"""Multi-host runs of `extract` and `finetune`: where the coordinator is, how many processes, which one this is.

`jax.distributed.initialize()` without arguments reads only JAX_COORDINATOR_ADDRESS from the environment (the
process count and id come from a cluster environment such as SLURM or a Cloud TPU), so on plain machines the
three values are passed to it explicitly. Start every process with the same command, e.g. on each host i of 2:

    JAX_COORDINATOR_ADDRESS=HOST0:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=i vggish-jax extract ...

or give coordinator, num_processes and process_id in the command's --config file (the commands declare these
settings and --distributed: vggish_jax.commands.options); the file wins over the environment.
`barrier` lets process 0 finalize a shared store only once every process has written its part.
"""
from __future__ import annotations

import os

BARRIER_TIMEOUT_S = 3600.0  # how long a finished process waits for the others before giving up
ENV = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def settings(args) -> tuple[str, int, int] | None:
    """(coordinator, num_processes, process_id) from args (a --config file), else the environment; None for a
    single-process run; a one-line ValueError for a half-given or malformed setting."""
    given = {k: str(os.environ.get(var, "") if getattr(args, k, None) is None else getattr(args, k)).strip() or None
             for k, var in ENV.items()}
    if not any(given.values()):
        return None
    missing = [f"{k} (or ${ENV[k]})" for k, v in given.items() if v is None]
    if missing:
        raise ValueError(f"multi-host needs all of coordinator, num_processes and process_id (--config keys or "
                         f"JAX_* variables); missing {', '.join(missing)}")
    try:
        n, i = int(given["num_processes"]), int(given["process_id"])
    except ValueError:
        raise ValueError(f"num_processes and process_id take whole numbers, got {given['num_processes']!r} "
                         f"and {given['process_id']!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"process_id must be in 0 .. {n - 1} for num_processes {n}, got {i}")
    host, sep, port = given["coordinator"].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"coordinator takes HOST:PORT (process 0's address), got {given['coordinator']!r}")
    return given["coordinator"], n, i


def initialize(args) -> bool:
    """Join the multi-host run that args (--distributed, the settings) or the environment describe, before any
    other JAX call; True if this is one."""
    found = settings(args)
    if found is None and not getattr(args, "distributed", False):
        return False
    import jax

    jax.distributed.initialize(*(found or ()))  # no settings: the cluster environment says where and who
    return True


def barrier(name: str, timeout_s: float | None = None) -> str | None:
    """Wait until every process of the jax.distributed run has reached `name` (the same string in each).

    None once all have, or at once outside a multi-process run; else why not, in one line (a process
    that died or is still busy after `timeout_s`, default BARRIER_TIMEOUT_S)."""
    from jax._src import distributed as jax_distributed  # the client jax.distributed.initialize() made

    client = jax_distributed.global_state.client
    if client is None or (jax_distributed.global_state.num_processes or 1) < 2:
        return None
    timeout_s = BARRIER_TIMEOUT_S if timeout_s is None else timeout_s
    try:
        client.wait_at_barrier(name, max(1, int(timeout_s * 1000)))
    except Exception as e:  # jax's XlaRuntimeError: DEADLINE_EXCEEDED, or a process that left the run
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        return f"not every process reached {name!r} within {timeout_s:g} s ({first})"
    return None
