import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from taskcast import AsyncClient

from ..server.live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real ``taskcast serve`` with the demo tasks, a SQLite store in ``tmp_path`` and a short
    keep-alive."""
    with live_server(
        tmp_path, "--keepalive", "0.5", "--grace", "1", "--shutdown-timeout", "1"
    ) as s:
        yield s


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, timeout=20) as c:
        yield c


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def wait_for_open_streams(url: str, count: int, timeout: float = 30) -> None:
    """Poll the server's ``/health`` until it counts ``count`` open event streams."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=10) as http:
        while http.get("/health").json()["streams"] != count:
            assert time.monotonic() < deadline, f"the server never counted {count} streams"
            time.sleep(0.05)  # polling another process's gauge, bounded by the deadline
