"""A real ``redis-server`` on a free loopback port, started and stopped by pid, for tests.

A missing ``redis-server`` fails the tests that need it, with the command that installs it
(``make test`` installs it first: scripts/system-deps).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process: ``url`` (db 0), ``port``, ``process``; ``stop`` and
    ``start`` again on the same port and directory (for restart tests)."""

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        self.directory = directory
        self.persistent = persistent
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait (bounded) until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed: `scripts/system-deps` installs it"
                " (as root: apt-get update && apt-get install -y redis-server)",
                pytrace=False,
            )
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
            if self.persistent
            else ["--save", "", "--appendonly", "no"]
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [*command, "--dir", str(self.directory), *persistence],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited {self.process.returncode}:"
                    f" {(self.directory / 'redis.log').read_text()}"
                )
            if self._answers():
                return
            time.sleep(0.02)  # polling an external process's startup, bounded by the deadline
        self.stop()
        raise RuntimeError(f"redis-server did not start within {STARTUP_TIMEOUT}s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop the server by pid (SIGTERM: it persists first, if persistent) and reap it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
