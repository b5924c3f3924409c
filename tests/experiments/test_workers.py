"""Worker processes: they stop with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENT = textwrap.dedent("""
    import os, sys, time
    from memp.experiments.workers import worker_pool

    def pid(_):
        return os.getpid()

    if __name__ == "__main__":
        with worker_pool(2) as pool:
            pids = set(pool.map(pid, range(8)))
            for p in pids:
                print(p, flush=True)
            busy = [pool.submit(time.sleep, 600) for _ in range(2)]  # workers busy, as in a suite
            time.sleep(1)
            print("ready", flush=True)
            time.sleep(600)  # killed by the test long before
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_workers_stop_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = []
    for line in parent.stdout:
        if line.strip() == "ready":
            break
        pids.append(int(line))
    assert pids and all(_alive(p) for p in pids) and parent.pid not in pids
    os.kill(parent.pid, signal.SIGKILL)  # no cleanup of any kind in the parent
    parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
