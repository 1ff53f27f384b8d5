"""Real ``taskcast worker`` processes for the distributed tests, stopped by pid."""

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
READY = re.compile(r"taskcast worker \S+ ready")


class Worker:
    """A started ``taskcast worker``: its ``process``, ``pid`` and output."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)


@contextmanager
def worker(directory: Path, store: str, *args: str, name: str = "worker") -> Iterator[Worker]:
    """Start ``taskcast worker --store STORE --app tests.redis.sample_app:app`` (plus ``args``)
    and wait until it is ready; kill it on exit if it still runs."""
    log_path = directory / f"{name}.log"
    command = [
        sys.executable, "-m", "taskcast", "worker", "--store", store,
        "--app", "tests.redis.sample_app:app", "--no-demo", "--log-level", "info", *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not READY.search(log_path.read_text(errors="replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log_path.read_text()}")
            time.sleep(0.05)  # polling the log for startup, bounded by the deadline
        yield Worker(process, log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)
