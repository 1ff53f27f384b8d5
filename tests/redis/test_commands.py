"""`taskcast worker` and `serve --no-worker` refuse stores that processes cannot share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _taskcast(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskcast", *args], capture_output=True, text=True, timeout=60
    )


def test_a_worker_on_a_store_it_cannot_share_exits_2_saying_so(tmp_path: Path) -> None:
    done = _taskcast("worker", "--store", f"sqlite:///{tmp_path}/x.db")
    assert done.returncode == 2
    assert "redis://" in done.stderr


def test_serve_no_worker_on_a_store_it_cannot_share_exits_2_saying_so(tmp_path: Path) -> None:
    done = _taskcast("serve", "--no-worker", "--store", f"sqlite:///{tmp_path}/x.db", "--port", "0")
    assert done.returncode == 2
    assert "--no-worker needs a store that workers share" in done.stderr


def test_a_worker_says_when_redis_cannot_be_reached() -> None:
    done = _taskcast("worker", "--store", "redis://127.0.0.1:1/0", "--no-demo")
    assert done.returncode != 0
    assert "cannot open store" in done.stderr
