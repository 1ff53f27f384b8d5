"""Durable steps (``ctx.step``, ``ctx.sleep``, ``ctx.signal``): a body that runs again gets the
recorded results back instead of doing the work again, on memory, SQLite and Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import taskcast
from taskcast.states import RunState

from .conftest import collect, types


def step_records(events: list[taskcast.Event]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == "step"]


async def test_a_retried_run_replays_its_completed_steps(app: taskcast.App) -> None:
    calls: Counter[str] = Counter()

    async def work(name: str) -> str:
        calls[name] += 1
        return f"{name} done"

    @app.task(name="three", retries=1, backoff=0)
    async def three(ctx: taskcast.Context) -> list[str]:
        first = await ctx.step("one", work, "one")
        second = await ctx.step("two", work, "two")
        if ctx.attempt == 1:
            raise RuntimeError("the network fell over")
        third = await ctx.step("three", work, "three")
        return [first, second, third]

    run = await app.wait((await app.submit("three")).id, timeout=10)
    assert run.state is RunState.COMPLETED, run.error
    assert run.result == ["one done", "two done", "three done"]
    assert calls == {"one": 1, "two": 1, "three": 1}
    records = step_records(await collect(app, run.id))
    assert [(r["name"], r["index"], r["attempt"]) for r in records] == [
        ("one", 0, 1),
        ("two", 1, 1),
        ("three", 2, 2),
    ]


async def test_a_step_result_is_recorded_before_step_returns(app: taskcast.App) -> None:
    seen: list[list[str]] = []

    @app.task(name="look")
    async def look(ctx: taskcast.Context) -> None:
        await ctx.step("fetch", lambda: {"pages": 3})
        seen.append([e.type for e in await app.store.read_events(ctx.run_id)])

    run = await app.wait((await app.submit("look")).id, timeout=10)
    assert run.state is RunState.COMPLETED, run.error
    assert seen[0][-1] == "step"  # a plain function, called in a worker thread


async def test_a_different_step_at_a_recorded_position_fails_with_step_mismatch(
    app: taskcast.App,
) -> None:
    calls: Counter[str] = Counter()

    async def work(name: str) -> str:
        calls[name] += 1
        return name

    @app.task(name="fickle", retries=3, backoff=0)
    async def fickle(ctx: taskcast.Context) -> None:
        first = "fetch-page" if ctx.attempt == 1 else "send-mail"  # not the same program
        await ctx.step(first, work, first)
        raise RuntimeError("try again")

    run = await app.wait((await app.submit("fickle")).id, timeout=10)
    assert run.state is RunState.FAILED
    assert run.attempt == 2, "a mismatch is never retried"
    assert run.error is not None and run.error["type"] == "StepMismatch"
    message = run.error["message"]
    assert "'fetch-page'" in message and "'send-mail'" in message and "position 0" in message
    assert calls == {"fetch-page": 1}


async def test_a_step_retries_alone_and_records_how_many_tries(app: taskcast.App) -> None:
    tries = 0

    async def flaky() -> int:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise ConnectionError("reset by peer")
        return tries

    @app.task(name="patient")
    async def patient(ctx: taskcast.Context) -> int:
        return await ctx.step("flaky", flaky, retries=2, backoff=0)

    run = await app.wait((await app.submit("patient")).id, timeout=10)
    assert run.state is RunState.COMPLETED and run.result == 3
    (record,) = step_records(await collect(app, run.id))
    assert record["tries"] == 3 and record["result"] == 3


async def test_a_step_that_fails_for_good_fails_the_run_and_records_its_error(
    app: taskcast.App,
) -> None:
    async def broken() -> None:
        raise ValueError("no such page")

    @app.task(name="doomed")
    async def doomed(ctx: taskcast.Context) -> None:
        await ctx.step("fetch", broken, retries=1, backoff=0)

    run = await app.wait((await app.submit("doomed")).id, timeout=10)
    assert run.state is RunState.FAILED and run.error is not None
    assert run.error["type"] == "ValueError"
    (record,) = step_records(await collect(app, run.id))
    assert record["error"] == {"type": "ValueError", "message": "no such page"}
    assert record["tries"] == 2 and "result" not in record


async def test_app_retry_replays_the_steps_of_the_run_it_retries(app: taskcast.App) -> None:
    calls: Counter[str] = Counter()
    fail = True

    async def work(name: str) -> str:
        calls[name] += 1
        if name == "three" and fail:
            raise RuntimeError("the third step broke")
        return name

    @app.task(name="report")
    async def report(ctx: taskcast.Context) -> list[str]:
        return [await ctx.step(name, work, name) for name in ("one", "two", "three")]

    first = await app.wait((await app.submit("report")).id, timeout=10)
    assert first.state is RunState.FAILED
    fail = False
    second = await app.wait((await app.retry(first.id)).id, timeout=10)
    assert second.state is RunState.COMPLETED and second.result == ["one", "two", "three"]
    assert calls == {"one": 1, "two": 1, "three": 2}


async def test_events_emitted_before_a_crash_are_not_repeated_by_the_replay(
    app: taskcast.App,
) -> None:
    @app.task(name="chatty", retries=1, backoff=0)
    async def chatty(ctx: taskcast.Context) -> str:
        await ctx.progress(0, 2, message="starting")
        inside = await ctx.step("one", _emitting, ctx)
        await ctx.progress(1, 2)
        await ctx.step("two", _value, "two")
        if ctx.attempt == 1:
            raise RuntimeError("crash after step two")
        await ctx.progress(2, 2)
        return inside

    run = await app.wait((await app.submit("chatty")).id, timeout=10)
    assert run.state is RunState.COMPLETED, run.error
    own = [(e.type, e.data) for e in await collect(app, run.id) if e.type in ("progress", "log")]
    assert own == [
        ("progress", {"current": 0, "total": 2, "message": "starting"}),
        ("log", {"message": "inside step one", "level": "info"}),
        ("progress", {"current": 1, "total": 2}),
        ("progress", {"current": 2, "total": 2}),
    ]


async def _emitting(ctx: taskcast.Context) -> str:
    await ctx.log("inside step one")
    return "one"


async def _value(value: Any) -> Any:
    return value


async def test_a_replay_writes_the_events_that_differ_from_the_recorded_ones(
    app: taskcast.App,
) -> None:
    @app.task(name="counting", retries=1, backoff=0)
    async def counting(ctx: taskcast.Context) -> None:
        await ctx.step("one", _value, 1)
        await ctx.emit("note", {"attempt": ctx.attempt})
        if ctx.attempt == 1:
            raise RuntimeError("again")

    run = await app.wait((await app.submit("counting")).id, timeout=10)
    notes = [e.data for e in await collect(app, run.id) if e.type == "note"]
    assert notes == [{"attempt": 1}, {"attempt": 2}]


async def test_a_run_without_steps_emits_again_when_retried(app: taskcast.App) -> None:
    @app.task(name="plain", retries=1, backoff=0)
    async def plain(ctx: taskcast.Context) -> None:
        await ctx.emit("note", "same")
        if ctx.attempt == 1:
            raise RuntimeError("again")

    run = await app.wait((await app.submit("plain")).id, timeout=10)
    assert [e.data for e in await collect(app, run.id) if e.type == "note"] == ["same", "same"]


async def test_a_signal_taken_is_replayed_without_waiting_again(app: taskcast.App) -> None:
    @app.task(name="approve", retries=1, backoff=0)
    async def approve(ctx: taskcast.Context) -> Any:
        decision = await ctx.signal("approve")
        if ctx.attempt == 1:
            raise RuntimeError("crash after the approval")
        return decision

    run = await app.submit("approve")
    async with contextlib.aclosing(app.events(run.id)) as stream:
        async for event in stream:
            if event.type == "started":
                await app.signal(run.id, "approve", {"by": "ana"})
                break
    done = await app.wait(run.id, timeout=10)
    assert done.state is RunState.COMPLETED and done.result == {"by": "ana"}
    (record,) = step_records(await collect(app, run.id))
    assert record["kind"] == "signal" and record["name"] == "approve"


async def test_a_step_refuses_a_bad_name_and_bad_policy(app: taskcast.App) -> None:
    problems: list[str | None] = []

    @app.task(name="bad")
    async def bad(ctx: taskcast.Context) -> None:
        for call in (
            ctx.step("has space", _value, 1),
            ctx.step(["not", "a", "name"], _value, 1),  # type: ignore[arg-type]
            ctx.step("ok", _value, 1, retries=-1),
            ctx.step("ok", _value, 1, backoff=float("nan")),
            ctx.sleep(-1),
        ):
            with pytest.raises(taskcast.InvalidRequest) as caught:
                await call
            problems.append(caught.value.details.get("param"))

    run = await app.wait((await app.submit("bad")).id, timeout=10)
    assert run.state is RunState.COMPLETED, run.error
    assert problems == ["name", "name", "retries", "backoff", "seconds"]
    assert "step" not in types(await collect(app, run.id))


async def test_a_task_cannot_emit_step_events(app: taskcast.App) -> None:
    @app.task(name="forger")
    async def forger(ctx: taskcast.Context) -> None:
        await ctx.emit("step", {"name": "fake", "index": 0, "result": 1})

    run = await app.wait((await app.submit("forger")).id, timeout=10)
    assert run.state is RunState.FAILED and run.error is not None
    assert "reserved" in run.error["message"]


async def test_a_resumed_run_skips_its_steps_and_sleeps_only_the_rest(
    tmp_path: Path, make_sqlite_app: Callable[[], taskcast.App]
) -> None:
    calls: Counter[str] = Counter()
    stuck = asyncio.Event()

    def register(app: taskcast.App) -> None:
        @app.task(name="journey", retries=1)
        async def journey(ctx: taskcast.Context) -> str:
            await ctx.step("one", _count, calls, "one")
            await ctx.sleep(0.2)
            await ctx.step("two", _count, calls, "two")
            if ctx.attempt == 1:
                stuck.set()
                await asyncio.Event().wait()  # the process stops here
            await ctx.step("three", _count, calls, "three")
            return "arrived"

    first = make_sqlite_app()
    register(first)
    async with first:
        run = await first.submit("journey")
        await stuck.wait()
        await first.shutdown(grace=0)
    second = make_sqlite_app()
    register(second)
    async with second:
        done = await second.wait(run.id, timeout=10)
        records = step_records(await collect(second, run.id))
    assert done.state is RunState.COMPLETED and done.result == "arrived"
    assert calls == {"one": 1, "two": 1, "three": 1}
    assert [(r["kind"], r["attempt"]) for r in records] == [
        ("step", 1),
        ("sleep", 1),
        ("step", 1),
        ("step", 2),
    ]


async def _count(calls: Counter[str], name: str) -> str:
    calls[name] += 1
    return name


@pytest.fixture
def make_sqlite_app(tmp_path: Path) -> Callable[[], taskcast.App]:
    def make() -> taskcast.App:
        return taskcast.App(f"sqlite:///{tmp_path / 'resume.db'}", grace=0, shutdown_timeout=2)

    return make


async def test_a_body_that_catches_step_mismatch_cannot_use_recorded_results(
    app: taskcast.App,
) -> None:
    outcomes: list[str] = []

    @app.task(name="stubborn", retries=1, backoff=0)
    async def stubborn(ctx: taskcast.Context) -> None:
        if ctx.attempt == 1:
            await ctx.step("a", _value, "a")
            await ctx.step("b", _value, "b")
            raise RuntimeError("again")
        try:
            await ctx.step("other", _value, "other")
        except taskcast.StepMismatch:
            outcomes.append("mismatch")
        try:
            await ctx.step("b", _value, "b")  # recorded at position 1, but the body diverged
        except taskcast.StepMismatch:
            outcomes.append("mismatch again")

    run = await app.wait((await app.submit("stubborn")).id, timeout=10)
    assert run.state is RunState.COMPLETED
    assert outcomes == ["mismatch", "mismatch again"]


@pytest.mark.virtual_time
async def test_a_resumed_sleep_sleeps_only_what_is_left(
    make_sqlite_app: Callable[[], taskcast.App],
) -> None:
    def register(app: taskcast.App) -> None:
        @app.task(name="nap", retries=1)
        async def nap(ctx: taskcast.Context) -> str:
            await ctx.sleep(3600)
            return "rested"

    loop = asyncio.get_running_loop()
    first = make_sqlite_app()
    register(first)
    async with first:
        run = await first.submit("nap")
        await asyncio.sleep(1000)  # virtual: the run is asleep, 2,600 s to go
        await first.shutdown(grace=0)
    second = make_sqlite_app()
    register(second)
    async with second:
        resumed = loop.time()
        done = await second.wait(run.id, timeout=7200)
        slept = loop.time() - resumed
    assert done.state is RunState.COMPLETED and done.attempt == 2
    assert slept == pytest.approx(2600, abs=5)


@pytest.mark.virtual_time
async def test_a_sleeping_run_holds_no_slot() -> None:
    app = taskcast.App("memory://", max_concurrency=1, grace=0)
    order: list[str] = []

    @app.task(name="sleeper")
    async def sleeper(ctx: taskcast.Context) -> None:
        await ctx.sleep(60)
        order.append("sleeper")

    @app.task(name="quick")
    async def quick() -> None:
        order.append("quick")

    async with app:
        sleeping = await app.submit("sleeper")
        async with contextlib.aclosing(app.events(sleeping.id)) as stream:
            async for event in stream:
                if event.type == "step":  # asleep: its wake-up time is recorded
                    break
        quick_run = await app.submit("quick")
        assert (await app.wait(quick_run.id, timeout=30)).state is RunState.COMPLETED
        assert (await app.wait(sleeping.id, timeout=120)).state is RunState.COMPLETED
    assert order == ["quick", "sleeper"]


async def test_a_sync_body_replays_its_steps_too(app: taskcast.App) -> None:
    calls: Counter[str] = Counter()

    def fetch(name: str) -> str:
        calls[name] += 1
        return name.upper()

    @app.task(name="threaded", retries=1, backoff=0)
    def threaded(ctx: Any) -> list[str]:
        done = [ctx.step("one", fetch, "one"), ctx.step("two", fetch, "two")]
        if ctx.attempt == 1:
            raise RuntimeError("again")
        return done

    run = await app.wait((await app.submit("threaded")).id, timeout=10)
    assert run.state is RunState.COMPLETED and run.result == ["ONE", "TWO"]
    assert calls == {"one": 1, "two": 1}


async def test_a_signal_sent_before_a_restart_waits_for_the_resumed_run(
    make_sqlite_app: Callable[[], taskcast.App],
) -> None:
    holding = asyncio.Event()

    def register(app: taskcast.App) -> None:
        @app.task(name="two_signals", retries=1)
        async def two_signals(ctx: taskcast.Context) -> list[Any]:
            first = await ctx.signal("a")
            if ctx.attempt == 1:
                holding.set()
                await asyncio.Event().wait()  # the process stops here, "b" sent meanwhile
            return [first, await ctx.signal("b")]

    before = make_sqlite_app()
    register(before)
    async with before:
        run = await before.submit("two_signals")
        await before.signal(run.id, "a", "A")
        await holding.wait()
        await before.signal(run.id, "b", "B")  # logged and kept, never taken in this process
        await before.shutdown(grace=0)
    after = make_sqlite_app()
    register(after)
    async with after:
        done = await after.wait(run.id, timeout=10)
    assert done.state is RunState.COMPLETED, done.error
    assert done.result == ["A", "B"]
