"""Fixtures for the Redis tests: a store URL with a key prefix of its own per test."""

from __future__ import annotations

import pytest

from ..conftest import redis_url_for
from ..redis_server import RedisServer


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis with a fresh key prefix and a 3 s visibility timeout (heartbeats
    every second: a loaded machine does not make a live worker look dead)."""
    return redis_url_for(redis_server, visibility_timeout=3)
