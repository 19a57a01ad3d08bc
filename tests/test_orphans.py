"""Decode workers die with their parent (real SIGKILL), and a killed TFDS build's work folder is removed."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

PARENT = textwrap.dedent("""
    import os, sys, time
    from vggish_jax.datasets import decode


    def mark_and_sleep(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)


    if __name__ == "__main__":
        pool = decode.process_pool(2)
        marks = [os.path.join(sys.argv[1], f"worker{i}") for i in range(2)]
        futures = [pool.submit(mark_and_sleep, m) for m in marks]
        while not all(os.path.exists(m) for m in marks):  # both workers past their initializer
            time.sleep(0.05)
        print("ready", flush=True)
        time.sleep(600)
""")


def _alive(pids):
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_workers_and_resource_tracker_die_with_a_sigkilled_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    children = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(children) >= 2  # the two workers (+ multiprocessing's resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 30
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(children)
        assert not left, f"orphans still running: {[psutil.Process(p).cmdline()[:3] for p in left]}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _alive(children):  # a failed run must not leave its orphans behind
            psutil.Process(pid).kill()


def test_watcher_fallback_ends_a_reparented_worker(tmp_path):
    # Without prctl (other platforms), the watcher thread alone must end the worker: run the initializer in
    # a grandchild whose parent exits normally, with prctl made unavailable.
    code = textwrap.dedent("""
        import os, sys, time
        from vggish_jax.datasets import decode
        pid = os.fork()
        if pid == 0:
            sys.platform = "darwin"  # no prctl: only the watcher thread is left
            decode.die_with_parent(os.getppid(), poll_seconds=0.05)
            time.sleep(60)
            os._exit(0)
        print(pid, flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive([child]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive([child])


def test_incomplete_build_folder_is_removed(tmp_path):
    from vggish_jax.datasets import fma

    b = fma.builder("fma/small", data_dir=str(tmp_path), workers=0)
    version_dir = os.fspath(b.data_path)
    stale = os.path.join(os.path.dirname(version_dir), "incomplete.AB12CD_" + os.path.basename(version_dir))
    other = os.path.join(os.path.dirname(version_dir), "incomplete.AB12CD_0.9.0")
    for d in (stale, other):
        os.makedirs(os.path.join(d, "fma-train.array_record-00000-of-00001"), exist_ok=True)
    assert fma.remove_incomplete_builds(b) == [stale]
    assert not os.path.exists(stale) and os.path.exists(other)  # other versions are not this build's
