"""A real uvicorn in a subprocess serving an application of the tests, on 127.0.0.1."""

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

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0
READY = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


class Uvicorn:
    """A started uvicorn: its ``url``, its ``process`` and its output so far."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, url: str) -> None:
        self.process = process
        self.log_path = log_path
        self.url = url

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``signum`` and wait for the exit status."""
        self.process.send_signal(signum)
        return self.process.wait(timeout)


@contextmanager
def uvicorn_server(
    directory: Path,
    application: str,
    env: dict[str, str] | None = None,
    name: str = "uvicorn",
    cwd: Path = REPO,
) -> Iterator[Uvicorn]:
    """Run ``python -m uvicorn <application>`` on a free port of 127.0.0.1 (in ``cwd``: the
    repository unless told) until the block ends; kill it then if it still runs."""
    log_path = directory / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        application,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--log-level",
        "info",
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=environment
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                found = READY.search(log_path.read_text(errors="replace"))
                if found:
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start:\n{log_path.read_text()}")
                time.sleep(0.05)  # polling the log for startup, bounded by the deadline
            yield Uvicorn(process, log_path, found.group(1))
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(10)
