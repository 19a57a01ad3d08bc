"""SIGTERM (which the CLI turns into an exception) while a decode worker is being started: the worker still gets
its start-up data, so the user sees the CLI's one line and no worker traceback."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from vggish_jax.datasets import decode

# A SIGTERM lands right after a worker process is spawned and before its start-up data is written to it: the
# moment at which, unheld, the exception cut the write and the worker died on "Ran out of input".
SCRIPT = textwrap.dedent("""
    import os, signal
    from multiprocessing import util
    from vggish_jax.datasets import decode


    class Terminated(Exception):
        pass


    def raise_terminated(signum, frame):
        raise Terminated


    spawn = util.spawnv_passfds


    def spawn_then_sigterm(path, args, passfds):
        pid = spawn(path, args, passfds)
        if "spawn_main" in repr(args):  # a decode worker (not multiprocessing's resource tracker)
            os.kill(os.getpid(), signal.SIGTERM)
        return pid


    if __name__ == "__main__":
        signal.signal(signal.SIGTERM, raise_terminated)
        util.spawnv_passfds = spawn_then_sigterm
        pool = decode.process_pool(1)
        try:
            list(decode.ordered_map(abs, [-1, -2], pool, 2))
        except Terminated:
            print("terminated", flush=True)
        util.spawnv_passfds = spawn
        pool.shutdown(wait=True, cancel_futures=True)
""")


def test_sigterm_while_a_worker_starts_leaves_no_worker_traceback(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip() == "terminated"
    assert "Traceback" not in done.stderr, done.stderr


def test_sigterm_held_runs_the_handler_once_after_the_block():
    calls = []

    def handler(signum, frame):
        calls.append(signum)
        raise KeyboardInterrupt  # a handler that raises, as the CLI's does

    old = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with decode.sigterm_held():
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)
                inside = list(calls)
        assert inside == [] and calls == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, old)
