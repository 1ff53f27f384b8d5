"""Shutdown: grace, then cancel, `shutdown` to every watcher, interrupted runs resumed later."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

import taskcast
from taskcast.stores.sqlite import SQLiteStore

from .conftest import Gate, collect, types, wait_for_event


async def test_runs_that_finish_within_grace_complete_normally(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(grace=5.0)
    gate = Gate()

    @app.task(name="short")
    async def short() -> str:
        await gate()
        return "done"

    await app.start()
    run = await app.submit("short")
    await gate.reached.wait()
    shutting = asyncio.create_task(app.shutdown())
    await asyncio.sleep(0)
    with pytest.raises(taskcast.ShuttingDown):
        await app.submit("short")
    gate.opened.set()
    report = await shutting
    assert report.finished == [run.id] and report.unfinished == []


def gated_runs(app: taskcast.App, count: int) -> tuple[asyncio.Event, asyncio.Event]:
    """Register ``short``: its runs wait for ``opened``; ``all_reached`` is set once ``count``
    bodies are waiting."""
    opened, all_reached = asyncio.Event(), asyncio.Event()
    reached = 0

    @app.task(name="short")
    async def short(i: int) -> int:
        nonlocal reached
        reached += 1
        if reached == count:
            all_reached.set()
        await opened.wait()
        return i

    return opened, all_reached


async def test_watchers_of_runs_ending_in_the_grace_period_get_their_end_before_the_close(
    make_app: Callable[..., taskcast.App],
) -> None:
    """A run's task does not wait for its terminal commit; shutdown must, before it closes
    the watchers' streams."""
    app = make_app(grace=5.0)
    opened, all_reached = gated_runs(app, 20)
    await app.start()
    runs = await app.submit_many("short", [{"i": i} for i in range(20)])
    await all_reached.wait()
    watching = [asyncio.Event() for _ in runs]

    async def watch(run_id: str, started: asyncio.Event) -> list[str]:
        seen = []
        async for event in app.events(run_id):
            seen.append(event.type)
            if event.type == "started":
                started.set()  # caught up: what follows comes live
        return seen

    watchers = [asyncio.create_task(watch(r.id, w)) for r, w in zip(runs, watching, strict=True)]
    for started in watching:
        await started.wait()
    if isinstance(app.store, SQLiteStore):
        # Slow commits: the terminal writes are still on their way when the grace period ends
        # (with or without this, a correct shutdown passes; without it, a wrong one may too).
        commit = app.store._commit

        def slow_commit(*args: Any) -> None:
            time.sleep(0.05)
            commit(*args)

        app.store._commit = slow_commit  # type: ignore[method-assign]
    shutting = asyncio.create_task(app.shutdown())
    await asyncio.sleep(0)
    opened.set()
    report = await shutting
    assert sorted(report.finished) == sorted(run.id for run in runs)
    for run, watcher in zip(runs, watchers, strict=True):
        assert await watcher == ["queued", "started", "completed"], run.id


async def test_watchers_joining_as_shutdown_begins_end_cleanly(
    make_app: Callable[..., taskcast.App],
) -> None:
    """Watchers still replaying when the store closes end their stream; they never see the
    store's error."""
    for _ in range(5):
        app = make_app(grace=5.0)
        opened, all_reached = gated_runs(app, 20)
        await app.start()
        runs = await app.submit_many("short", [{"i": i} for i in range(20)])
        await all_reached.wait()
        watchers = [asyncio.create_task(collect(app, run.id)) for run in runs]
        shutting = asyncio.create_task(app.shutdown())
        await asyncio.sleep(0)
        opened.set()
        await shutting
        for watcher in watchers:
            seen = types(await watcher)  # raises if a watcher got an error
            assert seen == ["queued", "started", "completed"][: len(seen)]


async def test_shutdown_cancels_runs_after_grace_and_every_watcher_gets_shutdown(
    make_app: Callable[..., taskcast.App], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(grace=0.0)
    cleaned: list[str] = []
    started = asyncio.Event()

    @app.task(name="long")
    async def long(i: int) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            cleaned.append(f"run {i}")

    await app.start()
    runs = [await app.submit("long", i=i) for i in range(3)]
    for run in runs:
        await wait_for_event(app, run.id, "started")
    watchers = [asyncio.create_task(collect(app, r.id)) for r in runs for _ in range(3)]
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="taskcast"):
        report = await app.shutdown()
    logs = await asyncio.gather(*watchers)
    assert sorted(report.interrupted) == sorted(r.id for r in runs)
    assert sorted(cleaned) == ["run 0", "run 1", "run 2"]
    for log in logs:
        assert log[-1].type == "shutdown"
        assert log[-1].data["state"] == "interrupted"
    for run in runs:
        assert run.id in caplog.text  # each unfinished run is logged
    assert "interrupted" in str(report)


async def test_no_task_of_taskcast_is_left_on_the_loop_after_shutdown(
    make_app: Callable[..., taskcast.App],
) -> None:
    before = asyncio.all_tasks()
    app = make_app(max_concurrency=2)

    @app.task(name="long")
    async def long() -> None:
        await asyncio.Event().wait()

    @app.task(name="flaky", retries=5, backoff=3600)
    async def flaky() -> None:
        raise RuntimeError("retry me later")

    await app.start()
    for _ in range(4):
        await app.submit("long")
    await app.submit("flaky")
    await app.shutdown()
    assert asyncio.all_tasks() - before == set()
    assert app.stopped


async def test_queued_runs_stay_queued_and_hear_shutdown(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(max_concurrency=1)
    gate = Gate()

    @app.task(name="block")
    async def block() -> None:
        await gate()

    await app.start()
    await app.submit("block")
    await gate.reached.wait()
    waiting = await app.submit("block")
    watcher = asyncio.create_task(collect(app, waiting.id))
    await asyncio.sleep(0)
    report = await app.shutdown()
    log = await watcher
    if app.shared:
        # The queue is the store's: a worker that stops leaves the runs it never took to the
        # other workers, untouched; only the watchers of this process stop reading.
        assert report.queued == [] and types(log) == ["queued"]
        return
    assert report.queued == [waiting.id]
    assert types(log) == ["queued", "shutdown"]
    assert log[-1].data["state"] == "queued"


async def test_a_task_that_ignores_cancellation_cannot_hang_shutdown(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(grace=0.0, shutdown_timeout=0.05, cancel_timeout=60)
    release = asyncio.Event()
    inside = asyncio.Event()

    @app.task(name="deaf")
    async def deaf() -> None:
        inside.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    await app.start()
    run = await app.submit("deaf")
    await inside.wait()
    report = await app.shutdown()
    assert report.stuck == [run.id] and not report.clean
    release.set()  # let the deaf body end so the test leaves nothing behind
    await asyncio.sleep(0)


async def test_shutdown_twice_returns_the_same_report(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app()
    await app.start()
    first, second = await asyncio.gather(app.shutdown(), app.shutdown())
    assert first is second


async def test_shutdown_racing_a_cancel_gives_one_outcome(
    make_app: Callable[..., taskcast.App],
) -> None:
    from taskcast.stores import store_from_url

    for i in range(40):
        app = make_app(grace=0.0)
        inside = asyncio.Event()

        async def long(inside: asyncio.Event = inside) -> None:
            inside.set()
            await asyncio.Event().wait()

        app.task(name="long")(_without_arguments(long))
        await app.start()
        run = await app.submit("long")
        await inside.wait()
        cancel = asyncio.create_task(app.cancel(run.id))
        for _ in range(i % 4):
            await asyncio.sleep(0)
        report = await app.shutdown()
        cancelled = await cancel
        # Whoever wins, the two agree: a cancel that said True ends cancelled, else interrupted.
        assert (run.id in report.interrupted) is not cancelled
        store = app.store if app.store.url == "memory://" else store_from_url(app.store.url)
        if store is not app.store:
            await store.open()
        try:
            stored = await store.get_run(run.id)
            events = await store.read_events(run.id)
        finally:
            if store is not app.store:
                await store.close()
        assert stored is not None
        expected = taskcast.RunState.CANCELLED if cancelled else taskcast.RunState.INTERRUPTED
        assert stored.state is expected
        assert events[-1].type == ("cancelled" if cancelled else "shutdown")
        assert len([e for e in events if e.is_terminal]) == (1 if cancelled else 0)


async def test_interrupted_runs_are_resumed_as_a_new_attempt_on_the_next_start(
    tmp_path: object,
) -> None:
    url = f"sqlite:///{tmp_path}/resume.db"
    first = taskcast.App(url, grace=0.0)
    second = taskcast.App(url, grace=0.0)
    inside = asyncio.Event()
    allow_finish = asyncio.Event()

    async def job(ctx: taskcast.Context) -> int:
        if ctx.attempt == 1:
            inside.set()
            await asyncio.Event().wait()
        await allow_finish.wait()
        return ctx.attempt

    first.task(name="job", retries=1)(job)
    second.task(name="job", retries=1)(job)
    async with first:
        run = await first.submit("job")
        await inside.wait()
    assert (await _reopen_state(url, run.id)) is taskcast.RunState.INTERRUPTED
    async with second:
        allow_finish.set()
        done = await second.wait(run.id, timeout=5)
        assert done.state is taskcast.RunState.COMPLETED and done.result == 2
        log = await collect(second, run.id)
        assert types(log) == [
            "queued", "started", "shutdown", "retrying", "started", "completed",
        ]  # fmt: skip
        assert log[3].data["error"]["type"] == "Interrupted"


async def test_an_interrupted_run_without_attempts_left_fails_with_a_reason(
    tmp_path: object,
) -> None:
    url = f"sqlite:///{tmp_path}/resume.db"
    first = taskcast.App(url, grace=0.0)
    inside = asyncio.Event()

    @first.task(name="job")
    async def job() -> None:
        inside.set()
        await asyncio.Event().wait()

    async with first:
        run = await first.submit("job")
        await inside.wait()
    second = taskcast.App(url)
    second.task(name="job")(job)
    async with second:
        done = await second.get(run.id)
        assert done.state is taskcast.RunState.FAILED
        assert done.error is not None and "no attempts are left" in done.error["message"]
        assert "process stopped" in done.error["message"]


async def test_queued_runs_survive_a_restart_and_then_run(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/resume.db"
    first = taskcast.App(url, max_concurrency=1, grace=0.0)
    second = taskcast.App(url)
    inside = asyncio.Event()

    async def block() -> None:
        inside.set()
        await asyncio.Event().wait()

    async def later() -> str:
        return "ran after restart"

    first.task(name="block")(block)
    first.task(name="later")(later)
    second.task(name="block")(block)
    second.task(name="later")(later)
    async with first:
        await first.submit("block")
        await inside.wait()
        queued = await first.submit("later")
    async with second:
        assert (await second.wait(queued.id, timeout=5)).result == "ran after restart"


_CRASHING_PROCESS = """
import asyncio, sys
import taskcast

app = taskcast.App(sys.argv[1])

@app.task(name="job", retries=1)
async def job(ctx: taskcast.Context) -> int:
    await asyncio.Event().wait()
    return ctx.attempt

async def main() -> None:
    async with app:
        run = await app.submit("job")
        async for event in app.events(run.id):  # watchers see only what is committed
            if event.type == "started":
                print(run.id, flush=True)  # running in the file: the parent may kill us now
                break
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_crash_leaves_running_runs_that_the_next_start_recovers(tmp_path: object) -> None:
    """A process killed mid-run (SIGKILL: no shutdown at all) leaves a `running` row; the next
    start counts it as interrupted and runs it again as a new attempt."""
    url = f"sqlite:///{tmp_path}/crash.db"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_PROCESS, url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            run_id = (await process.stdout.readline()).decode().strip()
    finally:
        process.kill()
        await process.wait()
    assert run_id, "the process died before its run started"
    assert await _reopen_state(url, run_id) is taskcast.RunState.RUNNING

    recovered = taskcast.App(url)

    @recovered.task(name="job", retries=1)
    async def job(ctx: taskcast.Context) -> int:
        return ctx.attempt

    async with recovered:
        assert (await recovered.wait(run_id, timeout=5)).result == 2


async def _reopen_state(url: str, run_id: str) -> taskcast.RunState:
    from taskcast.stores import store_from_url

    store = store_from_url(url)
    await store.open()
    try:
        run = await store.get_run(run_id)
        assert run is not None
        return run.state
    finally:
        await store.close()


def _without_arguments(function: Callable[[], object]) -> Callable[[], object]:
    """Hide a default-bound loop variable from the task's signature (tasks take JSON args)."""

    async def task() -> None:
        await function()  # type: ignore[misc]

    return task


async def test_every_queued_run_hears_shutdown_even_when_there_are_many(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(max_concurrency=1, max_queue=5_000)
    gate = Gate()

    @app.task(name="block")
    async def block() -> None:
        await gate()

    await app.start()
    await app.submit("block")
    await gate.reached.wait()
    queued = [await app.submit("block") for _ in range(2_000)]
    watchers = [asyncio.create_task(collect(app, r.id)) for r in queued[-50:]]
    await asyncio.sleep(0)
    report = await app.shutdown()
    logs = await asyncio.gather(*watchers)
    if app.shared:  # left to the other workers (see above)
        assert report.queued == [] and all(types(log) == ["queued"] for log in logs)
        return
    assert sorted(report.queued) == sorted(r.id for r in queued)
    for log in logs:
        assert types(log) == ["queued", "shutdown"]
