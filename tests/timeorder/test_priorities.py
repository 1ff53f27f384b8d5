"""Priorities: among runs ready together a higher one starts first; ageing bounds the wait of
a low one (``policies.rank``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import taskcast
from taskcast.policies import AGEING

from .conftest import started


def ordered_app(make_app: Callable[..., taskcast.App]) -> tuple[taskcast.App, list[str]]:
    """One slot; ``blocker`` holds it until its event is set; ``note`` records its label."""
    app = make_app(max_concurrency=1)
    order: list[str] = []

    @app.task
    async def blocker(ctx: taskcast.Context) -> None:
        await ctx.signal("go")

    @app.task(priority=4)
    async def note(label: str) -> None:
        order.append(label)

    return app, order


async def test_a_higher_priority_starts_first_among_runs_ready_together(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, order = ordered_app(make_app)
    async with started(app):
        blocker = await app.submit("blocker")
        runs = [
            await app.submit_with("note", {"label": f"p{p}"}, priority=p) for p in (1, 5, 3, 9, 0)
        ]
        await app.signal(blocker.id, "go")
        for run in runs:
            await app.wait(run.id, timeout=5)
    assert order == ["p9", "p5", "p3", "p1", "p0"]


async def test_equal_priorities_start_in_submit_order(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, order = ordered_app(make_app)
    async with started(app):
        blocker = await app.submit("blocker")
        runs = [await app.submit("note", label=str(i)) for i in range(5)]
        await app.signal(blocker.id, "go")
        for run in runs:
            await app.wait(run.id, timeout=5)
    assert order == ["0", "1", "2", "3", "4"]


async def test_a_task_priority_is_its_runs_default_and_submit_overrides_it(
    make_app: Callable[..., taskcast.App],
) -> None:
    app, _ = ordered_app(make_app)
    async with started(app):
        assert (await app.submit("note", label="x")).priority == 4
        assert (await app.submit_with("note", {"label": "y"}, priority=7)).priority == 7


@pytest.mark.virtual_time
async def test_a_low_priority_run_is_not_overtaken_by_runs_queued_ageing_later(
    make_app: Callable[..., taskcast.App],
) -> None:
    """One slot, a stream of priority-9 runs arriving faster than they finish: the priority-0
    run still starts, before any run queued more than 9 * AGEING seconds after it."""
    app = make_app(max_concurrency=1)
    started_at: dict[str, float] = {}

    @app.task
    async def work(label: str) -> None:
        started_at[label] = asyncio.get_running_loop().time()
        await asyncio.sleep(10)

    async with started(app):
        loop = asyncio.get_running_loop()
        await app.submit_with("work", {"label": "first"}, priority=9)
        low = await app.submit_with("work", {"label": "low"}, priority=0)
        queued_at = {"low": loop.time()}
        while "low" not in started_at:
            label = f"high{len(queued_at)}"
            await app.submit_with("work", {"label": label}, priority=9)
            queued_at[label] = loop.time()
            await asyncio.sleep(5)  # two arrive per run that finishes: never idle
        await app.wait(low.id, timeout=60)
    overtook = [label for label, t in started_at.items() if t < started_at["low"]]
    assert all(queued_at.get(label, 0) <= queued_at["low"] + 9 * AGEING for label in overtook)
    assert any(label not in started_at for label in queued_at)  # highs were still waiting


async def test_a_bad_task_priority_is_refused_at_registration(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app()
    with pytest.raises(ValueError, match="priority must be an integer from 0 to 9"):

        @app.task(priority=12)
        async def urgent() -> None: ...
