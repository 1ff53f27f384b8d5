"""Concurrency limits, the bounded queue, fairness, and signals."""

from __future__ import annotations

import asyncio

import pytest

import taskcast

from .conftest import Gate, collect, types, wait_for_event


async def _assert_queued(app: taskcast.App, count: int) -> None:
    """``count`` runs wait: in this process's queue, or in a shared store's (where a worker
    takes only what it can start)."""
    if app.store.shared:
        counts = await app.count_runs()
        assert sum(n for (_, state), n in counts.items() if state == "queued") == count
    else:
        assert app.stats()["queued"] == count


async def test_the_per_task_concurrency_limit_is_never_exceeded(app: taskcast.App) -> None:
    running = 0
    peak = 0
    three_running = asyncio.Event()
    release = asyncio.Event()

    @app.task(name="limited", concurrency=3)
    async def limited() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            three_running.set()
        await release.wait()
        running -= 1

    runs = [await app.submit("limited") for _ in range(40)]
    await three_running.wait()
    assert app.stats()["running"] == 3
    await _assert_queued(app, 37)
    release.set()
    for run in runs:
        await app.wait(run.id, timeout=5)
    assert peak == 3


async def test_the_global_concurrency_limit_is_never_exceeded(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=4)  # type: ignore[operator]
    running = 0
    peak = 0
    four_running = asyncio.Event()
    release = asyncio.Event()

    async def body() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 4:
            four_running.set()
        await release.wait()
        running -= 1

    app.task(name="a")(body)
    app.task(name="b")(body)
    async with app:
        runs = [await app.submit("a" if i % 2 else "b") for i in range(40)]
        await four_running.wait()
        assert app.stats()["running"] == 4
        await _assert_queued(app, 36)
        release.set()
        for run in runs:
            await app.wait(run.id, timeout=5)
    assert peak == 4


async def test_a_full_queue_refuses_with_queue_full_and_writes_nothing(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=1, max_queue=3)  # type: ignore[operator]
    gate = Gate()

    @app.task(name="block")
    async def block() -> None:
        await gate()

    async with app:
        first = await app.submit("block")
        await gate.reached.wait()  # running: no longer counts as queued
        queued = [await app.submit("block") for _ in range(3)]
        with pytest.raises(taskcast.QueueFull) as caught:
            await app.submit("block")
        assert caught.value.retry_after > 0
        assert "queue is full" in str(caught.value)
        assert len(await app.runs()) == 4
        gate.opened.set()
        for run in [first, *queued]:
            await app.wait(run.id, timeout=5)
        await app.submit("block")  # room again


async def test_waiting_runs_start_in_submit_order(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=1)  # type: ignore[operator]
    order: list[int] = []

    @app.task(name="job")
    async def job(i: int) -> None:
        order.append(i)
        await asyncio.sleep(0)

    async with app:
        runs = [await app.submit("job", i=i) for i in range(20)]
        for run in runs:
            await app.wait(run.id, timeout=5)
    assert order == list(range(20))


async def test_a_task_at_its_limit_does_not_block_other_tasks(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=10)  # type: ignore[operator]
    gate = Gate()

    @app.task(name="single", concurrency=1)
    async def single() -> None:
        await gate()

    @app.task(name="other")
    async def other() -> str:
        return "ran"

    async with app:
        await app.submit("single")
        await app.submit("single")  # waits for the first
        await gate.reached.wait()
        other_run = await app.wait((await app.submit("other")).id, timeout=5)
        assert other_run.result == "ran"
        gate.opened.set()


async def test_a_signal_is_delivered_to_the_waiting_task(app: taskcast.App) -> None:
    @app.task(name="approve")
    async def approve(ctx: taskcast.Context) -> object:
        return await ctx.signal("continue")

    run = await app.submit("approve")
    await wait_for_event(app, run.id, "started")
    await app.signal(run.id, "continue", {"approved_by": "ana"})
    done = await app.wait(run.id, timeout=5)
    assert done.result == {"approved_by": "ana"}
    events = await collect(app, run.id)
    assert "signal" in types(events)
    assert next(e for e in events if e.type == "signal").data == {
        "name": "continue",
        "data": {"approved_by": "ana"},
    }


async def test_a_signal_sent_before_the_task_waits_is_kept(make_app: object) -> None:
    app: taskcast.App = make_app(max_concurrency=1)  # type: ignore[operator]
    gate = Gate()

    @app.task(name="block")
    async def block() -> None:
        await gate()

    @app.task(name="approve")
    async def approve(ctx: taskcast.Context) -> list[object]:
        return [await ctx.signal("go"), await ctx.signal("go")]

    async with app:
        await app.submit("block")
        await gate.reached.wait()
        run = await app.submit("approve")  # queued behind `block`
        await app.signal(run.id, "go", 1)
        await app.signal(run.id, "go", 2)
        gate.opened.set()
        assert (await app.wait(run.id, timeout=5)).result == [1, 2]


async def test_signal_errors_name_the_problem(app: taskcast.App) -> None:
    @app.task(name="noop")
    async def noop() -> None: ...

    with pytest.raises(taskcast.RunNotFound):
        await app.signal("nope", "go")
    run = await app.wait((await app.submit("noop")).id, timeout=5)
    with pytest.raises(taskcast.RunFinished, match="already finished"):
        await app.signal(run.id, "go")


async def test_waiting_for_a_signal_times_out(app: taskcast.App) -> None:
    @app.task(name="impatient")
    async def impatient(ctx: taskcast.Context) -> str:
        try:
            await ctx.signal("never", timeout=0.01)
        except TimeoutError:
            return "gave up"
        return "got it"

    assert (await app.wait((await app.submit("impatient")).id, timeout=5)).result == "gave up"
