"""Fixtures for the rules of time and order on the stores a single process owns (memory and a
real SQLite file); the Redis side, with several processes, is in tests/redis."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import taskcast
from taskcast import events


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def make_app(store_url: str) -> Callable[..., taskcast.App]:
    """An App on this test's store; options as for ``taskcast.App``."""

    def make(**options: object) -> taskcast.App:
        options.setdefault("grace", 0.0)
        options.setdefault("shutdown_timeout", 2.0)
        return taskcast.App(store_url, **options)  # type: ignore[arg-type]

    return make


@contextlib.asynccontextmanager
async def started(app: taskcast.App) -> AsyncIterator[taskcast.App]:
    """``async with app`` that shuts down even if the test body raised."""
    await app.start()
    try:
        yield app
    finally:
        if not app.stopped:
            await app.shutdown()


async def lifecycle(app: taskcast.App, run_id: str) -> list[str]:
    """The lifecycle event types of a finished run's log, in order."""
    log = [event async for event in app.events(run_id)]
    return [e.type for e in log if e.type in events.LIFECYCLE_EVENT_TYPES]
