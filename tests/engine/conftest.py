"""Fixtures for engine tests: every test runs against the memory store, a real SQLite file and a
real Redis (one process: its App is both the API node and the worker)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import taskcast

from ..conftest import redis_url_for
from ..redis_server import RedisServer


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return redis_url_for(server)
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def make_app(store_url: str) -> Callable[..., taskcast.App]:
    """An App on this test's store; options as for ``taskcast.App``."""

    def make(**options: object) -> taskcast.App:
        options.setdefault("grace", 0.0)
        options.setdefault("shutdown_timeout", 2.0)
        return taskcast.App(store_url, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def app(make_app: Callable[..., taskcast.App]) -> AsyncIterator[taskcast.App]:
    """A started App with no tasks; register tasks before submitting (registration is sync)."""
    app = make_app()
    await app.start()
    try:
        yield app
    finally:
        if not app.stopped:
            await app.shutdown()


async def collect(app: taskcast.App, run_id: str, after: int = 0) -> list[taskcast.Event]:
    """Every event of the run from ``after`` to the end of its stream."""
    return [event async for event in app.events(run_id, after=after)]


def types(events: list[taskcast.Event]) -> list[str]:
    return [event.type for event in events]


def assert_gap_free(events: list[taskcast.Event], start: int = 1) -> None:
    assert [e.seq for e in events] == list(range(start, start + len(events)))


async def wait_for_event(app: taskcast.App, run_id: str, type: str) -> taskcast.Event:
    """Wait (on the log, not on time) until the run's log holds an event of that type."""
    async with contextlib.aclosing(app.events(run_id)) as events:
        async for event in events:
            if event.type == type:
                return event
    raise AssertionError(f"run {run_id} ended without a {type!r} event")


class Gate:
    """An asyncio.Event a task can wait on and a test can open; counts who reached it."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    async def __call__(self) -> None:
        self.reached.set()
        await self.opened.wait()
