"""Workflow races under many seeded schedules (taskcast.testing.explore): whatever order the
loop runs ready tasks in, every run ends exactly once and no child outlives its parent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import taskcast
from taskcast.testing import explore


class Broken(Exception):
    pass


def scenario(cancel_after: int) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        app = taskcast.App("memory://", max_concurrency=2, grace=0.0, shutdown_timeout=2.0)
        cleaned: list[int] = []

        @app.task(name="item")
        async def item(i: int) -> int:
            try:
                for _ in range(i % 3):
                    await asyncio.sleep(0)
                if i == 4:
                    raise Broken("item 4 broke")
                return i
            finally:
                cleaned.append(i)

        @app.task(name="parent", concurrency=1)
        async def parent(ctx: taskcast.Context) -> list[int]:
            return await ctx.map("item", [{"i": i} for i in range(6)], concurrency=3)

        async with app:
            run = await app.submit("parent")
            for _ in range(cancel_after):
                await asyncio.sleep(0)
            await app.cancel(run.id, reason="race")
            done = await app.wait(run.id, timeout=30)
            assert done.state in (taskcast.RunState.CANCELLED, taskcast.RunState.FAILED)
            children = await app.runs(parent=run.id)
            for run_id in [run.id, *(c.id for c in children)]:
                events = [e async for e in app.events(run_id)]
                assert sum(e.is_terminal for e in events) == 1, run_id
            assert all(c.is_finished for c in children)
            assert sorted(cleaned) == sorted(c.args["i"] for c in children if c.attempt)
            assert app.stats()["running"] == 0

    return run


def test_a_cancel_racing_a_failing_batch_ends_every_run_once() -> None:
    for cancel_after in (0, 3, 8, 20):
        assert explore(scenario(cancel_after), schedules=15) == 15
