"""A real ``taskcast serve`` in a subprocess, for tests that talk to it over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
READY = re.compile(
    r"taskcast serving on (http://(?:127\.0\.0\.1|0\.0\.0\.0):\d+|unix socket [^;]+)[ ;]"
)


class LiveServer:
    """A started server: ``url`` (TCP) or ``uds``, its ``process`` and its output so far."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, where: str) -> None:
        self.process = process
        self.log_path = log_path
        self.url = where if where.startswith("http") else "http://taskcast"
        self.uds = where.removeprefix("unix socket ") if not where.startswith("http") else None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    @property
    def port(self) -> int:
        """The TCP port it listens on (a restart on the same port keeps browsers' URLs)."""
        return int(self.url.rsplit(":", 1)[1])


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        found = READY.search(log_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise RuntimeError(
                f"taskcast serve exited {process.returncode}:\n{log_path.read_text()}"
            )
        time.sleep(0.05)  # polling the log for startup, bounded by the deadline
    raise RuntimeError(
        f"taskcast serve did not start in {STARTUP_TIMEOUT}s:\n{log_path.read_text()}"
    )


@contextmanager
def live_server(
    directory: Path, *args: str, store: str | None = None, name: str = "server", port: int = 0
) -> Iterator[LiveServer]:
    """Start ``taskcast serve --port <port>`` (plus ``args``; port 0 picks a free one) with a
    SQLite store in ``directory``; kill it on exit if it still runs."""
    log_path = directory / f"{name}.log"
    store = store or f"sqlite:///{directory / 'taskcast.db'}"
    command = [sys.executable, "-m", "taskcast", "serve", "--store", store, "--log-level", "info"]
    if "--uds" not in args:
        command += ["--port", str(port)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("TASKCAST_TOKEN", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, *args], stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
        try:
            yield LiveServer(process, log_path, _wait_ready(process, log_path))
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(10)
