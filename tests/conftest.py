"""Fixtures shared by every suite: one real redis-server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server (no persistence) on a free loopback port, shared by the session; tests
    keep apart by key prefix (``redis_url``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


_prefixes = iter(range(1, 1 << 30))


def redis_url_for(server: RedisServer, **options: object) -> str:
    """A URL of ``server`` with a key prefix of its own, plus store ``options``."""
    query = "&".join([f"prefix=t{next(_prefixes)}:", *(f"{k}={v}" for k, v in options.items())])
    return f"{server.url}?{query}"
