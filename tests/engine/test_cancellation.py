"""Cancellation: every watcher hears it, cleanup runs, one terminal state whatever the race."""

from __future__ import annotations

import asyncio
import random

import taskcast
from taskcast.events import TERMINAL_EVENT_TYPES

from .conftest import Gate, collect, types


def terminal_events(events: list[taskcast.Event]) -> list[taskcast.Event]:
    return [e for e in events if e.type in TERMINAL_EVENT_TYPES]


async def test_cancel_sends_cancelled_to_every_watcher(app: taskcast.App) -> None:
    gate = Gate()

    @app.task(name="wait")
    async def wait() -> None:
        await gate()

    run = await app.submit("wait")
    watchers = [asyncio.create_task(collect(app, run.id)) for _ in range(5)]
    await gate.reached.wait()
    assert await app.cancel(run.id, reason="user asked") is True
    logs = await asyncio.gather(*watchers)
    for log in logs:
        assert log[-1].type == "cancelled"
        assert log[-1].data["reason"] == "user asked"
    assert len({tuple((e.seq, e.type) for e in log) for log in logs}) == 1
    assert (await app.get(run.id)).state is taskcast.RunState.CANCELLED


async def test_cancel_delivers_cancelled_error_into_the_task_and_cleanup_runs(
    app: taskcast.App,
) -> None:
    gate = Gate()
    seen: list[str] = []

    @app.task(name="careful")
    async def careful(ctx: taskcast.Context) -> None:
        try:
            await gate()
        except asyncio.CancelledError:
            seen.append("cancelled error")
            raise
        finally:
            await ctx.log("cleaned up")
            seen.append("finally")

    run = await app.submit("careful")
    await gate.reached.wait()
    await app.cancel(run.id)
    done = await app.wait(run.id, timeout=5)
    assert done.state is taskcast.RunState.CANCELLED
    assert seen == ["cancelled error", "finally"]
    events = await collect(app, run.id)
    assert types(events)[-2:] == ["log", "cancelled"]  # cleanup is logged before `cancelled`


async def test_cancellation_is_reraised_not_swallowed_by_the_coordinator(
    app: taskcast.App,
) -> None:
    gate = Gate()

    @app.task(name="wait")
    async def wait() -> None:
        await gate()

    run = await app.submit("wait")
    await gate.reached.wait()
    running = [t for t in asyncio.all_tasks() if t.get_name() == f"taskcast run {run.id}"]
    assert len(running) == 1
    await app.cancel(run.id)
    await asyncio.wait(running)
    assert running[0].cancelled()  # the run's task ends cancelled: the error was re-raised


async def test_a_task_that_swallows_the_cancel_still_ends_cancelled(app: taskcast.App) -> None:
    gate = Gate()

    @app.task(name="stubborn")
    async def stubborn() -> str:
        try:
            await gate()
        except asyncio.CancelledError:
            return "I refuse"  # swallowed
        return "done"

    run = await app.submit("stubborn")
    await gate.reached.wait()
    assert await app.cancel(run.id)
    done = await app.wait(run.id, timeout=5)
    assert done.state is taskcast.RunState.CANCELLED
    assert done.result is None


async def test_an_exception_raised_during_cancellation_handling_still_ends_cancelled(
    app: taskcast.App,
) -> None:
    gate = Gate()

    @app.task(name="messy")
    async def messy() -> None:
        try:
            await gate()
        finally:
            raise OSError("cleanup failed")

    run = await app.submit("messy")
    await gate.reached.wait()
    await app.cancel(run.id, reason="stop")
    done = await app.wait(run.id, timeout=5)
    assert done.state is taskcast.RunState.CANCELLED
    last = (await collect(app, run.id))[-1]
    assert last.type == "cancelled"
    assert last.data["cleanup_error"] == {"type": "OSError", "message": "cleanup failed"}


async def test_a_task_that_ignores_cancellation_is_recorded_cancelled_after_cancel_timeout(
    make_app: object,
) -> None:
    app: taskcast.App = make_app(cancel_timeout=0.05)  # type: ignore[operator]
    release = asyncio.Event()
    inside = asyncio.Event()

    @app.task(name="deaf")
    async def deaf() -> None:
        inside.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # ignores every cancellation

    async with app:
        run = await app.submit("deaf")
        await inside.wait()
        assert await app.cancel(run.id)
        done = await app.wait(run.id, timeout=5)
        assert done.state is taskcast.RunState.CANCELLED
        assert (await collect(app, run.id))[-1].data["abandoned"] is True
        release.set()


async def test_cancel_returns_false_for_unknown_and_finished_runs(app: taskcast.App) -> None:
    @app.task(name="noop")
    async def noop() -> None: ...

    assert await app.cancel("no-such-run") is False
    run = await app.wait((await app.submit("noop")).id, timeout=5)
    assert await app.cancel(run.id) is False
    assert (await app.get(run.id)).state is taskcast.RunState.COMPLETED


async def test_request_cancel_says_why_a_cancel_was_refused(app: taskcast.App) -> None:
    @app.task(name="noop")
    async def noop() -> None: ...

    unknown = await app.request_cancel("no-such-run")
    assert not unknown.accepted and not unknown.found
    run = await app.wait((await app.submit("noop")).id, timeout=5)
    finished = await app.request_cancel(run.id)
    assert not finished.accepted and finished.found
    assert finished.state in (None, taskcast.RunState.COMPLETED)  # the store may not say


async def test_cancel_twice_is_harmless(app: taskcast.App) -> None:
    gate = Gate()

    @app.task(name="wait")
    async def wait() -> None:
        await gate()

    run = await app.submit("wait")
    await gate.reached.wait()
    first, second = await asyncio.gather(app.cancel(run.id), app.cancel(run.id))
    assert first is True and second is True
    await app.wait(run.id, timeout=5)
    assert await app.cancel(run.id) is False
    assert len(terminal_events(await collect(app, run.id))) == 1


async def test_cancel_with_no_watchers_records_cancelled(app: taskcast.App) -> None:
    gate = Gate()

    @app.task(name="wait")
    async def wait() -> None:
        await gate()

    run = await app.submit("wait")
    await gate.reached.wait()
    assert app.stats()["watchers"] == 0
    await app.cancel(run.id)
    assert (await app.wait(run.id, timeout=5)).state is taskcast.RunState.CANCELLED


async def test_cancel_a_queued_run_before_it_starts(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=1)  # type: ignore[operator]
    gate = Gate()
    ran: list[int] = []

    @app.task(name="job")
    async def job(i: int) -> None:
        ran.append(i)
        await gate()

    async with app:
        first = await app.submit("job", i=1)
        second = await app.submit("job", i=2)
        await gate.reached.wait()
        assert (await app.get(second.id)).state is taskcast.RunState.QUEUED
        assert await app.cancel(second.id, reason="not needed")
        gate.opened.set()
        await app.wait(first.id, timeout=5)
        cancelled = await app.wait(second.id, timeout=5)
        assert cancelled.state is taskcast.RunState.CANCELLED
        assert ran == [1]
        assert types(await collect(app, second.id)) == ["queued", "cancelled"]


async def test_cancel_just_as_the_run_completes_gives_one_terminal_state(
    app: taskcast.App,
) -> None:
    rng = random.Random(7)

    @app.task(name="quick")
    async def quick(steps: int) -> str:
        for _ in range(steps):
            await asyncio.sleep(0)
        return "done"

    for _ in range(150):
        run = await app.submit("quick", steps=rng.randint(0, 4))
        for _ in range(rng.randint(0, 6)):
            await asyncio.sleep(0)
        accepted = await app.cancel(run.id)
        done = await app.wait(run.id, timeout=5)
        events = await collect(app, run.id)
        ends = terminal_events(events)
        assert len(ends) == 1, types(events)
        assert ends[0].type == done.state.value
        # True from cancel means the run ends cancelled; False means it ended otherwise.
        assert (done.state is taskcast.RunState.CANCELLED) == accepted


async def test_concurrent_cancels_and_completions_never_double_finish(app: taskcast.App) -> None:
    @app.task(name="short")
    async def short(steps: int) -> None:
        for _ in range(steps):
            await asyncio.sleep(0)

    runs = [await app.submit("short", steps=i % 5) for i in range(200)]
    results = await asyncio.gather(*(app.cancel(r.id) for r in runs[::2]))
    for run in runs:
        await app.wait(run.id, timeout=5)
    for run in runs:
        assert len(terminal_events(await collect(app, run.id))) == 1
    cancelled = [r for r in await app.runs(limit=1000) if r.state is taskcast.RunState.CANCELLED]
    assert len(cancelled) == sum(results)


async def test_a_second_cancel_while_the_first_is_being_written_is_accepted_too(
    app: taskcast.App,
) -> None:
    gate = Gate()

    @app.task(name="wait")
    async def wait() -> None:
        await gate()

    run = await app.submit("wait")
    await gate.reached.wait()
    writing, release = asyncio.Event(), asyncio.Event()
    transition = app.store.transition

    async def held(run_id: str, target: taskcast.RunState, *args, **kwargs):  # type: ignore[no-untyped-def]
        if target is taskcast.RunState.CANCELLED:
            writing.set()
            await release.wait()
        return await transition(run_id, target, *args, **kwargs)

    app.store.transition = held  # type: ignore[method-assign]
    try:
        assert await app.cancel(run.id, reason="first") is True
        await writing.wait()  # the body ended; its terminal write is under way
        assert await app.cancel(run.id, reason="second") is True
        release.set()
        done = await app.wait(run.id, timeout=10)
    finally:
        del app.store.transition
    assert done.state is taskcast.RunState.CANCELLED
    log = await collect(app, run.id)
    assert [e.data["reason"] for e in terminal_events(log)] == ["first"]
    assert await app.cancel(run.id, reason="late") is False
