"""`memp llm check` fails with exit code 1 in a shell; `memp llm serve` never outlives a signal.

Real processes throughout: the CLI entry point as a shell runs it, and a real child server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memp.llm.local import missing_for_llama_server

from .servers import answers, free_port, unavailable

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(REPO / "src"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def test_check_exits_1_in_a_shell_when_the_endpoint_cannot_be_reached() -> None:
    pytest.importorskip("openai", reason="the LLM client needs the llm extra")
    result = subprocess.run(
        [sys.executable, "-c", "from memp.cli.main import main; main()", "llm", "check",
         "--llm-base-url", f"http://127.0.0.1:{free_port()}/v1", "--llm-timeout", "2"],
        capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "NOT OK" in result.stderr and "could not connect" in result.stderr


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    # A zombie (exited, not yet reaped by init) holds no port and runs nothing.
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# A stand-in server: listens on the port it is given and serves until killed, like llama.cpp.
FAKE_SERVER = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen()
    time.sleep(600)
""")
RUNNER = "import sys; from memp.llm.local import run_until_stopped; sys.exit(run_until_stopped(sys.argv[1:]))"


def _stop_and_check(parent: subprocess.Popen, port: int, signum: int, ready) -> None:
    deadline = time.monotonic() + 120
    while not (ready() and _children(parent.pid)):
        assert parent.poll() is None, parent.stderr.read() if parent.stderr else parent.returncode
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    child = _children(parent.pid)[0]
    parent.send_signal(signum)
    assert parent.wait(timeout=30) == 0
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), f"the server child {child} outlived {signal.Signals(signum).name}"
    assert _port_free(port)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_runner_stops_its_child_on_a_signal(signum) -> None:
    port = free_port()
    parent = subprocess.Popen([sys.executable, "-c", RUNNER, sys.executable, "-c", FAKE_SERVER, str(port)],
                              env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        _stop_and_check(parent, port, signum, lambda: not _port_free(port))
    finally:
        parent.kill()


def test_memp_llm_serve_stops_llama_cpp_on_sigterm() -> None:
    missing = missing_for_llama_server()
    if missing is not None:
        unavailable(missing)
    port = free_port()
    parent = subprocess.Popen([sys.executable, "-c", "from memp.cli.main import main; main()", "llm", "serve",
                               "--port", str(port)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        _stop_and_check(parent, port, signal.SIGTERM, lambda: answers(f"http://127.0.0.1:{port}/v1/models"))
    finally:
        parent.kill()
