"""Fixtures for the server tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import redis_url_for
from ..redis_server import RedisServer
from .live import LiveServer, live_server


@pytest.fixture(params=["sqlite", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh server with the demo tasks and a short keep-alive, on a SQLite file or on Redis
    (one process that serves the API and runs the tasks)."""
    store = None
    if request.param == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        store = redis_url_for(redis_server)
    with live_server(
        tmp_path, "--keepalive", "0.3", "--grace", "1", "--shutdown-timeout", "1", store=store
    ) as s:
        yield s
