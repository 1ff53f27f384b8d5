"""On a shared store (Redis), child runs and dependencies are refused with a clear error."""

from __future__ import annotations

import pytest

import taskcast

from ..conftest import redis_url_for
from ..redis_server import RedisServer


async def test_after_dependencies_are_refused_on_redis_naming_the_reason(
    redis_server: RedisServer,
) -> None:
    app = taskcast.App(redis_url_for(redis_server), grace=0.0)

    @app.task(name="noop")
    async def noop() -> None: ...

    async with app:
        first = await app.submit("noop")
        with pytest.raises(taskcast.InvalidRequest, match="need a memory:// or sqlite:// store"):
            await app.submit_with("noop", {}, after=[first.id])
        await app.wait(first.id, timeout=10)


async def test_a_child_run_fails_its_parent_on_redis_naming_the_reason(
    redis_server: RedisServer,
) -> None:
    app = taskcast.App(redis_url_for(redis_server), grace=0.0)

    @app.task(name="noop")
    async def noop() -> None: ...

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> None:
        await ctx.spawn("noop")

    async with app:
        run = await app.wait((await app.submit("parent")).id, timeout=10)
    assert run.state is taskcast.RunState.FAILED
    assert run.error is not None
    assert "need a memory:// or sqlite:// store" in run.error["message"]
