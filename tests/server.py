"""Runs the service as a real process on a free port, for the tests that need one."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(command: Sequence[str], env: dict[str, str], cwd: Path, port: int) -> Iterator[str]:
    """Starts `command`, waits until GET /v1 answers, and stops it (SIGTERM) afterwards."""
    log = open(cwd / f"server-{port}.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/v1", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(cwd / f'server-{port}.log').read_text()[-3000:]}")
            time.sleep(0.1)
        yield base_url
    finally:
        with suppress(ProcessLookupError):  # a test may have killed it already
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def server_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    # Under mutation testing a server runs the mutant under test, but while the tests are
    # mapped to the functions they call it has nowhere to report its calls: it runs unmutated.
    if env.get("MUTANT_UNDER_TEST") == "stats":
        del env["MUTANT_UNDER_TEST"]
    return {**env, "PYTHONPATH": str(ROOT), **overrides}


PYTHON = sys.executable


@contextmanager
def main_py(cwd: Path, **env: str) -> Iterator[tuple[str, Path]]:
    """`python main.py`, the README's way to serve, on a free port: its URL and its output."""
    port = free_port()
    environment = server_env(HOST="127.0.0.1", PORT=str(port), RELOAD="false", **env)
    with running([PYTHON, str(ROOT / "main.py")], environment, cwd, port) as base_url:
        yield base_url, cwd / f"server-{port}.log"


def serving_pid(server_port: int, response: httpx.Response) -> int:
    """The process holding the server's end of the (still open) connection `response` came on."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as sockets:
            for line in sockets.readlines()[1:]:
                fields = line.split()
                local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
                if (local, remote) == (server_port, client_port):
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with suppress(OSError):  # processes and their files come and go during the scan
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return int(pid)
    raise AssertionError(f"no process serves the connection from port {client_port}")
