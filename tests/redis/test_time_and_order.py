"""Time and order on Redis, in one process (API node and worker): the rules the local stores
keep hold in Redis too (real time: short delays)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

import taskcast


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[taskcast.App]:
    node = taskcast.App(redis_url, max_concurrency=1, grace=0.0, retention="forever")
    order: list[str] = []
    node.order = order  # type: ignore[attr-defined]

    @node.task
    async def note(label: str) -> str:
        order.append(label)
        return label

    @node.task
    async def blocker(ctx: taskcast.Context) -> None:
        await ctx.signal("go")

    @node.task(rate_limit="1/h")
    async def hourly() -> None: ...

    @node.task(rate_limit="5000/s")
    async def fast() -> None: ...

    node.schedule("paused", "note", {"label": "tick"}, every=1, enabled=False)
    async with node:
        yield node


async def test_a_higher_priority_starts_first_on_redis(app: taskcast.App) -> None:
    blocker = await app.submit("blocker")
    async with contextlib.aclosing(app.events(blocker.id)) as log:
        async for event in log:  # until it holds the one slot
            if event.type == "started":
                break
    runs = [await app.submit_with("note", {"label": f"p{p}"}, priority=p) for p in (1, 5, 3, 9, 0)]
    await app.signal(blocker.id, "go")
    for run in runs:
        await app.wait(run.id, timeout=10)
    assert app.order == ["p9", "p5", "p3", "p1", "p0"]  # type: ignore[attr-defined]


async def test_a_delayed_run_is_scheduled_then_runs_on_redis(app: taskcast.App) -> None:
    run = await app.submit_with("note", {"label": "later"}, delay=0.3)
    assert (await app.get(run.id)).state == "scheduled"
    assert [r.id for r in await app.runs(state="scheduled")] == [run.id]
    assert (await app.wait(run.id, timeout=10)).state == "completed"
    types = [e.type for e in await app.store.read_events(run.id)]
    assert types == ["scheduled", "queued", "started", "completed"]


async def test_a_scheduled_run_cancelled_on_redis_never_runs(app: taskcast.App) -> None:
    run = await app.submit_with("note", {"label": "never"}, delay=0.2)
    assert await app.cancel(run.id) is True
    later = await app.submit_with("note", {"label": "after"}, delay=0.4)
    await app.wait(later.id, timeout=10)
    assert (await app.get(run.id)).state == "cancelled"
    assert "never" not in app.order  # type: ignore[attr-defined]
    assert await app.store.command("ZCARD", app.store.prefix + "due") == 0  # type: ignore[attr-defined]


async def test_a_run_waiting_for_its_rate_on_redis_says_so_and_can_be_cancelled(
    app: taskcast.App,
) -> None:
    first = await app.submit("hourly")
    second = await app.submit("hourly")
    await app.wait(first.id, timeout=10)
    async with asyncio.timeout(10):
        # No event says a run was parked (it writes nothing to its log): look, bounded.
        while (await app.get(second.id)).waiting_for != "rate_limit":  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert (await app.queue_counts()).rate_limited == 1
    assert await app.cancel(second.id) is True
    assert (await app.get(second.id)).state == "cancelled"
    assert (await app.queue_counts()).rate_limited == 0


async def test_schedules_are_paused_and_recorded_in_redis(app: taskcast.App) -> None:
    (info,) = await app.schedule_info()
    assert info["paused"] is True
    await app.resume_schedule("paused")
    assert (await app.store.schedule_state("paused")).paused is False
    run = await app.trigger_schedule("paused")
    assert (await app.wait(run.id, timeout=10)).result == "tick"
    assert (await app.store.schedule_state("paused")).last_run == run.id


async def test_retention_prunes_a_tasks_finished_runs_on_redis(app: taskcast.App) -> None:
    runs = [await app.submit("note", label=str(i)) for i in range(5)]
    for run in runs:
        await app.wait(run.id, timeout=10)
    assert await app.store.prune_task("note", keep=2) == 3
    assert len(await app.runs(task="note")) == 2
    counts = await app.count_runs()
    assert counts[("note", taskcast.RunState.COMPLETED)] == 2


async def test_a_rate_of_more_than_one_start_a_millisecond_is_still_checked_on_redis(
    app: taskcast.App,
) -> None:
    runs = [await app.submit("fast") for _ in range(3)]
    for run in runs:
        await app.wait(run.id, timeout=10)
    store = app.store
    next_start = await store.command("GET", store.prefix + "rate:fast:null")  # type: ignore[attr-defined]
    assert next_start is not None and int(next_start) > 0  # microseconds of Redis's clock


async def test_a_delayed_run_waits_for_its_dependencies_on_redis(app: taskcast.App) -> None:
    first = await app.submit_with("note", {"label": "first"}, delay=0.3)
    later = await app.submit_with("note", {"label": "later"}, delay=0.1, after=[first.id])
    assert (await app.wait(later.id, timeout=10)).state == "completed"
    assert app.order == ["first", "later"]  # type: ignore[attr-defined]
    types = [e.type for e in await app.store.read_events(later.id)]
    assert types[:2] == ["scheduled", "queued"]
