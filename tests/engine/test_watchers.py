"""Watchers read the log from a cursor: no gaps, no duplicates, never slowing the task."""

from __future__ import annotations

import asyncio
import contextlib
import random

import taskcast
from taskcast import log as event_log

from .conftest import Gate, assert_gap_free, collect, types


async def test_every_watcher_sees_the_same_complete_log(app: taskcast.App) -> None:
    @app.task(name="chatty")
    async def chatty(ctx: taskcast.Context, n: int) -> int:
        for i in range(n):
            await ctx.emit("tick", {"i": i})
            if i % 10 == 0:
                await asyncio.sleep(0)
        return n

    run = await app.submit("chatty", n=200)
    logs = await asyncio.gather(*(collect(app, run.id) for _ in range(20)))
    for log in logs:
        assert_gap_free(log)
        assert types(log)[-1] == "completed" and len(log) == 203
    assert len({tuple(e.seq for e in log) for log in logs}) == 1


async def test_resuming_after_a_seq_gives_no_gap_and_no_duplicate(app: taskcast.App) -> None:
    @app.task(name="chatty")
    async def chatty(ctx: taskcast.Context) -> None:
        for i in range(30):
            await ctx.emit("tick", {"i": i})

    run = await app.wait((await app.submit("chatty")).id, timeout=5)
    full = await collect(app, run.id)
    for after in (0, 1, 7, 20, len(full) - 1):
        tail = await collect(app, run.id, after=after)
        assert [e.seq for e in tail] == [e.seq for e in full[after:]]
    assert await collect(app, run.id, after=len(full)) == []


async def test_a_slow_watcher_never_slows_the_task_and_catches_up_from_the_store(
    app: taskcast.App,
) -> None:
    total = event_log.TAIL_SIZE * 3  # far more than the in-memory tail holds
    finished = asyncio.Event()

    @app.task(name="firehose")
    async def firehose(ctx: taskcast.Context) -> None:
        for i in range(total):
            await ctx.emit("tick", {"i": i})
        finished.set()

    run = await app.submit("firehose")
    seen: list[taskcast.Event] = []
    async for event in app.events(run.id):
        seen.append(event)
        if event.type == "started":
            await finished.wait()  # this watcher stalls until the task is done
    assert_gap_free(seen)
    assert len(seen) == total + 3


async def test_a_watcher_that_stops_reading_costs_nothing_afterwards(app: taskcast.App) -> None:
    gate = Gate()

    @app.task(name="wait")
    async def wait(ctx: taskcast.Context) -> None:
        await ctx.emit("hello")
        await gate()

    run = await app.submit("wait")
    stream = app.events(run.id)
    async for event in stream:
        if event.type == "hello":
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert app.stats()["watchers"] == 0
    gate.opened.set()
    await app.wait(run.id, timeout=5)
    assert app.stats()["watchers"] == 0


async def test_watchers_joining_and_leaving_while_events_flow_see_consistent_logs(
    app: taskcast.App,
) -> None:
    rng = random.Random(3)

    @app.task(name="ticker")
    async def ticker(ctx: taskcast.Context) -> None:
        for i in range(300):
            await ctx.emit("tick", {"i": i})
            if i % 7 == 0:
                await asyncio.sleep(0)

    async def watch_for_a_while(run_id: str, after: int, stop_after: int) -> None:
        seen: list[taskcast.Event] = []
        async with contextlib.aclosing(app.events(run_id, after=after)) as events:
            async for event in events:
                seen.append(event)
                if len(seen) >= stop_after:
                    break
        assert [e.seq for e in seen] == list(range(after + 1, after + 1 + len(seen)))

    run = await app.submit("ticker")
    watchers = []
    for _ in range(60):
        watchers.append(
            asyncio.create_task(watch_for_a_while(run.id, rng.randint(0, 50), rng.randint(1, 400)))
        )
        await asyncio.sleep(0)
    await asyncio.gather(*watchers)
    await app.wait(run.id, timeout=5)
    assert app.stats()["watchers"] == 0


async def test_a_watcher_joining_as_the_run_ends_always_sees_the_terminal_event(
    app: taskcast.App,
) -> None:
    rng = random.Random(11)

    @app.task(name="quick")
    async def quick(steps: int) -> None:
        for _ in range(steps):
            await asyncio.sleep(0)

    for _ in range(150):
        run = await app.submit("quick", steps=rng.randint(0, 3))
        for _ in range(rng.randint(0, 8)):
            await asyncio.sleep(0)
        log = await asyncio.wait_for(collect(app, run.id), timeout=5)
        assert log[-1].type == "completed"
        assert_gap_free(log)


async def test_store_writes_under_many_concurrent_runs_keep_every_log_gap_free(
    app: taskcast.App,
) -> None:
    @app.task(name="writer")
    async def writer(ctx: taskcast.Context, n: int) -> None:
        for i in range(n):
            await ctx.emit("row", {"i": i})

    runs = [await app.submit("writer", n=25) for _ in range(100)]
    for run in runs:
        await app.wait(run.id, timeout=10)
    for run in runs:
        log = await collect(app, run.id)
        assert_gap_free(log)
        assert [e.data["i"] for e in log if e.type == "row"] == list(range(25))


async def finished_run_of(app: taskcast.App, n: int) -> taskcast.Run:
    """A run that emitted ``n`` events and finished."""

    @app.task(name="long")
    async def long(ctx: taskcast.Context, n: int) -> None:
        for i in range(n):
            await ctx.emit("tick", i)

    return await app.wait((await app.submit("long", n=n)).id, timeout=30)


async def test_watchers_catching_up_together_read_each_page_of_the_store_once(
    app: taskcast.App,
) -> None:
    n = 3 * event_log.PAGE_SIZE
    run = await finished_run_of(app, n)
    reads: list[int] = []
    read_events = app.store.read_events

    async def counted(run_id: str, after: int, limit: int) -> list[taskcast.Event]:
        reads.append(after)
        return await read_events(run_id, after, limit)

    app.store.read_events = counted  # type: ignore[method-assign]
    try:
        logs = await asyncio.gather(*(collect(app, run.id) for _ in range(25)))
    finally:
        del app.store.read_events
    for log in logs:
        assert_gap_free(log)
        assert len(log) == n + 3 and types(log)[-1] == "completed"
    # 25 readers, 4 pages (the last one short): each page was read once, not 25 times.
    assert sorted(reads) == [0, 1000, 2000, 3000]
    assert app._log._channels == {}  # type: ignore[union-attr]


async def test_a_watcher_cancelled_while_it_waits_for_a_shared_page_does_not_cancel_it(
    app: taskcast.App,
) -> None:
    run = await finished_run_of(app, event_log.PAGE_SIZE)
    release, reading = asyncio.Event(), asyncio.Event()
    read_events = app.store.read_events

    async def held(run_id: str, after: int, limit: int) -> list[taskcast.Event]:
        reading.set()
        await release.wait()
        return await read_events(run_id, after, limit)

    app.store.read_events = held  # type: ignore[method-assign]
    try:
        first = asyncio.create_task(collect(app, run.id))
        second = asyncio.create_task(collect(app, run.id))
        await reading.wait()
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        release.set()
        log = await second
    finally:
        del app.store.read_events
    assert_gap_free(log)
    assert len(log) == event_log.PAGE_SIZE + 3
