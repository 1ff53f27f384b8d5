"""Child runs: ctx.spawn and ctx.map, with structured concurrency."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

import taskcast
from taskcast.errors import BatchTimedOut, TaskFailed
from tests.engine.conftest import collect, types, wait_for_event


class ChildBoom(Exception):
    pass


async def test_a_spawned_child_is_a_run_that_records_its_parent(app: taskcast.App) -> None:
    @app.task(name="double")
    async def double(x: int) -> int:
        return 2 * x

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> dict[str, object]:
        child = await ctx.spawn("double", x=21)
        return {"child": child.run_id, "value": await child}

    run = await app.submit("parent")
    done = await app.wait(run.id, timeout=10)
    assert done.state is taskcast.RunState.COMPLETED
    assert done.result["value"] == 42
    child = await app.get(done.result["child"])
    assert child.parent_id == run.id
    assert child.state is taskcast.RunState.COMPLETED
    assert types(await collect(app, child.id)) == ["queued", "started", "completed"]


async def test_the_parents_log_gets_a_child_event_per_child(app: taskcast.App) -> None:
    @app.task(name="noop")
    async def noop(i: int) -> int:
        return i

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> list[int]:
        return await ctx.map("noop", [{"i": i} for i in range(3)])

    run = await app.submit("parent")
    events = await collect(app, run.id)
    children = [e.data for e in events if e.type == "child"]
    assert [c["task"] for c in children] == ["noop"] * 3
    listed = await app.runs(parent=run.id)
    assert sorted(r.id for r in listed) == sorted(c["run_id"] for c in children)
    assert events[-1].data["result"] == [0, 1, 2]


async def test_a_task_cannot_emit_a_child_event_itself(app: taskcast.App) -> None:
    @app.task(name="liar")
    async def liar(ctx: taskcast.Context) -> None:
        await ctx.emit("child", {"run_id": "x"})

    run = await app.wait((await app.submit("liar")).id, timeout=10)
    assert run.state is taskcast.RunState.FAILED
    assert "reserved" in run.error["message"]


async def test_a_fan_out_of_1000_children_under_concurrency_10_returns_every_result(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(max_concurrency=10)
    seen = 0
    most = 0

    @app.task(name="square")
    async def square(i: int) -> int:
        nonlocal seen, most
        seen += 1
        most = max(most, seen)
        await asyncio.sleep(0)
        seen -= 1
        return i * i

    @app.task(name="fan")
    async def fan(ctx: taskcast.Context, n: int) -> list[int]:
        return await ctx.map("square", [{"i": i} for i in range(n)], concurrency=10)

    async with app:
        run = await app.wait((await app.submit("fan", n=1000)).id, timeout=60)
    assert run.state is taskcast.RunState.COMPLETED
    assert run.result == [i * i for i in range(1000)]
    assert most <= 10


async def test_an_awaited_failing_child_fails_the_parent_and_cancels_its_siblings(
    app: taskcast.App,
) -> None:
    started = 0
    all_started = asyncio.Event()
    cleaned: list[int] = []

    @app.task(name="sibling")
    async def sibling(i: int) -> None:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(i)

    @app.task(name="bad")
    async def bad() -> None:
        await all_started.wait()
        raise ChildBoom("child broke")

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> None:
        for i in range(3):
            await ctx.spawn("sibling", i=i)
        broken = await ctx.spawn("bad")
        await broken  # raises TaskFailed; the body's exit cancels the siblings

    run = await app.wait((await app.submit("parent")).id, timeout=20)
    assert run.state is taskcast.RunState.FAILED
    assert run.error["type"] == "TaskFailed"
    assert "child broke" in run.error["message"]
    assert sorted(cleaned) == [0, 1, 2]
    for child in await app.runs(parent=run.id, task="sibling"):
        assert child.state is taskcast.RunState.CANCELLED


async def test_map_cancels_running_siblings_when_one_child_fails(app: taskcast.App) -> None:
    both_waiting = asyncio.Event()
    waiting = 0
    cleaned: list[int] = []

    @app.task(name="item")
    async def item(i: int) -> int:
        nonlocal waiting
        if i == 0:
            return 0
        if i == 2:
            await both_waiting.wait()
            raise ChildBoom(f"item {i} broke")
        waiting += 1
        if waiting == 2:
            both_waiting.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(i)
        return i

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> dict[str, object]:
        try:
            await ctx.map("item", [{"i": i} for i in range(4)])
        except TaskFailed as exc:
            partial = {str(k): v for k, v in exc.partial.items()}
            return {"failed": exc.run_id, "partial": partial, "state": exc.state}
        raise AssertionError("map should have raised")

    run = await app.wait((await app.submit("parent")).id, timeout=20)
    assert run.state is taskcast.RunState.COMPLETED, run.error
    assert run.result["state"] == "failed"
    assert run.result["failed"].endswith(".2")
    assert run.result["partial"] == {"0": 0}
    assert sorted(cleaned) == [1, 3]


async def test_map_with_isolate_returns_results_and_errors_side_by_side(
    app: taskcast.App,
) -> None:
    @app.task(name="maybe")
    async def maybe(i: int) -> int:
        if i % 2:
            raise ChildBoom(f"odd {i}")
        return i

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> list[object]:
        results = await ctx.map("maybe", [{"i": i} for i in range(4)], isolate=True)
        return [r.error["message"] if isinstance(r, TaskFailed) else r for r in results]

    run = await app.wait((await app.submit("parent")).id, timeout=20)
    assert run.result == [0, "odd 1", 2, "odd 3"]


async def test_cancelling_a_grandparent_cancels_its_grandchildren(app: taskcast.App) -> None:
    grandchild_waiting = asyncio.Event()
    cleaned: list[str] = []

    @app.task(name="leaf")
    async def leaf(ctx: taskcast.Context) -> None:
        grandchild_waiting.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(ctx.run_id)

    @app.task(name="middle")
    async def middle(ctx: taskcast.Context) -> None:
        await ctx.map("leaf", [{}])

    @app.task(name="top")
    async def top(ctx: taskcast.Context) -> None:
        await ctx.spawn("middle")
        await asyncio.Event().wait()

    run = await app.submit("top")
    await grandchild_waiting.wait()
    assert await app.cancel(run.id, reason="user")
    assert (await app.wait(run.id, timeout=10)).state is taskcast.RunState.CANCELLED
    (middle_run,) = await app.runs(parent=run.id)
    (leaf_run,) = await app.runs(parent=middle_run.id)
    assert (await app.get(middle_run.id)).state is taskcast.RunState.CANCELLED
    leaf_done = await app.get(leaf_run.id)
    assert leaf_done.state is taskcast.RunState.CANCELLED
    assert cleaned == [leaf_run.id]
    assert "parent" in leaf_done.error["message"]


@pytest.mark.virtual_time
async def test_a_parent_timing_out_cancels_its_children(app: taskcast.App) -> None:
    child_waiting = asyncio.Event()

    @app.task(name="slow")
    async def slow() -> None:
        child_waiting.set()
        await asyncio.Event().wait()

    @app.task(name="parent", timeout=30)
    async def parent(ctx: taskcast.Context) -> None:
        await ctx.map("slow", [{}, {}])

    run = await app.wait((await app.submit("parent")).id, timeout=300)
    assert run.state is taskcast.RunState.TIMED_OUT, run.error
    children = await app.runs(parent=run.id)
    assert len(children) == 2
    assert all(c.is_finished for c in children)


async def test_a_childs_deadline_never_exceeds_its_parents(app: taskcast.App) -> None:
    @app.task(name="child", timeout=3600)
    async def child(ctx: taskcast.Context) -> float | None:
        return ctx.time_left()

    @app.task(name="parent", timeout=5)
    async def parent(ctx: taskcast.Context) -> list[float | None]:
        return [ctx.time_left(), await (await ctx.spawn("child"))]

    run = await app.wait((await app.submit("parent")).id, timeout=10)
    parent_left, child_left = run.result
    assert child_left is not None and child_left <= parent_left <= 5


@pytest.mark.virtual_time
async def test_a_child_that_outlives_its_parents_deadline_times_out(app: taskcast.App) -> None:
    @app.task(name="child")
    async def child() -> None:
        await asyncio.Event().wait()

    @app.task(name="parent", timeout=30)
    async def parent(ctx: taskcast.Context) -> str:
        handle = await ctx.spawn("child")
        try:
            await asyncio.shield(handle.end())
        except asyncio.CancelledError:
            pass
        return handle.run_id

    run = await app.wait((await app.submit("parent")).id, timeout=300)
    assert run.state is taskcast.RunState.TIMED_OUT
    (child_run,) = await app.runs(parent=run.id)
    assert child_run.state in (taskcast.RunState.TIMED_OUT, taskcast.RunState.CANCELLED)


@pytest.mark.virtual_time
async def test_a_batch_that_times_out_gives_its_partial_results(app: taskcast.App) -> None:
    @app.task(name="step")
    async def step(i: int) -> int:
        if i >= 2:
            await asyncio.Event().wait()
        return i

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> dict[str, object]:
        try:
            await ctx.map("step", [{"i": i} for i in range(4)], timeout=30)
        except BatchTimedOut as exc:
            partial = {str(k): v for k, v in exc.partial.items()}
            return {"partial": partial, "unfinished": exc.unfinished}
        raise AssertionError("the batch should have timed out")

    run = await app.wait((await app.submit("parent")).id, timeout=300)
    assert run.result == {"partial": {"0": 0, "1": 1}, "unfinished": [2, 3]}
    states = {c.args["i"]: c.state for c in await app.runs(parent=run.id)}
    assert states[2] is states[3] is taskcast.RunState.CANCELLED


@pytest.mark.virtual_time
async def test_an_isolated_batch_that_times_out_reports_cancelled_children(
    app: taskcast.App,
) -> None:
    @app.task(name="step")
    async def step(i: int) -> int:
        if i == 1:
            await asyncio.Event().wait()
        return i

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> list[object]:
        results = await ctx.map(
            "step", [{"i": i} for i in range(3)], concurrency=2, isolate=True, timeout=30
        )
        return [r.state if isinstance(r, TaskFailed) else r for r in results]

    run = await app.wait((await app.submit("parent")).id, timeout=300)
    assert run.result == [0, "cancelled", 2]


async def test_children_unawaited_when_the_parent_returns_are_cancelled(
    app: taskcast.App,
) -> None:
    @app.task(name="forever")
    async def forever() -> None:
        await asyncio.Event().wait()

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> str:
        return (await ctx.spawn("forever")).run_id

    run = await app.wait((await app.submit("parent")).id, timeout=10)
    assert run.state is taskcast.RunState.COMPLETED
    child = await app.get(run.result)
    assert child.state is taskcast.RunState.CANCELLED
    assert "without awaiting" in child.error["message"]


@pytest.mark.parametrize("limit", ["task", "global"])
async def test_a_parent_with_concurrency_1_mapping_children_of_its_own_task_does_not_deadlock(
    make_app: Callable[..., taskcast.App], limit: str
) -> None:
    app = make_app(max_concurrency=1) if limit == "global" else make_app()

    @app.task(name="tree", concurrency=1 if limit == "task" else None)
    async def tree(ctx: taskcast.Context, depth: int) -> int:
        if depth == 0:
            return 1
        counts = await ctx.map("tree", [{"depth": depth - 1}] * 2)
        single = await (await ctx.spawn("tree", depth=depth - 1))
        return int(sum(counts)) + int(single)

    async with app:
        runs = [await app.submit("tree", depth=3) for _ in range(2)]
        for run in runs:
            done = await app.wait(run.id, timeout=30)
            assert done.state is taskcast.RunState.COMPLETED, done.error
            assert done.result == 27


async def test_a_waiting_parent_does_not_count_against_the_limit(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(max_concurrency=2)
    running = 0
    most = 0

    @app.task(name="leaf")
    async def leaf() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> None:
        await ctx.map("leaf", [{}] * 6)

    async with app:
        run = await app.wait((await app.submit("parent")).id, timeout=30)
        assert run.state is taskcast.RunState.COMPLETED
        assert app.stats()["running"] == 0
    assert most == 2


async def test_a_parent_cancelled_while_spawning_leaves_no_child_unfinished(
    app: taskcast.App,
) -> None:
    @app.task(name="forever")
    async def forever() -> None:
        await asyncio.Event().wait()

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> None:
        await ctx.map("forever", [{}] * 600)

    for _ in range(5):  # the cancel lands at a different point of the spawning each time
        run = await app.submit("parent")
        await wait_for_event(app, run.id, "child")
        assert await app.cancel(run.id)
        assert (await app.wait(run.id, timeout=20)).state is taskcast.RunState.CANCELLED
        children = await app.runs(parent=run.id, limit=1000)
        assert children and all(c.is_finished for c in children)
        assert app.stats()["queued"] == app.stats()["running"] == 0


async def test_two_maps_awaited_together_under_a_limit_of_one_do_not_deadlock(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(max_concurrency=1)

    @app.task(name="leaf")
    async def leaf(i: int) -> int:
        return i

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> list[list[int]]:
        return list(
            await asyncio.gather(
                ctx.map("leaf", [{"i": i} for i in range(5)]),
                ctx.map("leaf", [{"i": i} for i in range(5, 8)]),
            )
        )

    async with app:
        run = await app.wait((await app.submit("parent")).id, timeout=30)
    assert run.result == [[0, 1, 2, 3, 4], [5, 6, 7]]


async def test_a_cancel_racing_with_children_finishing_gives_one_terminal_event_each(
    app: taskcast.App,
) -> None:
    @app.task(name="quick")
    async def quick(i: int) -> int:
        await asyncio.sleep(0)
        return i

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> list[int]:
        return await ctx.map("quick", [{"i": i} for i in range(20)], concurrency=4)

    for nth_child in range(1, 20, 2):  # cancel after a different number of children each time
        run = await app.submit("parent")
        seen = 0
        async with contextlib.aclosing(app.events(run.id)) as events:
            async for event in events:
                seen += event.type == "child"
                if seen == nth_child:
                    break
        await app.cancel(run.id)
        done = await app.wait(run.id, timeout=20)
        assert done.state in (taskcast.RunState.CANCELLED, taskcast.RunState.COMPLETED)
        for run_id in [run.id, *(c.id for c in await app.runs(parent=run.id))]:
            terminal = [e for e in await collect(app, run_id) if e.is_terminal]
            assert len(terminal) == 1, run_id


async def test_a_parent_mapping_children_finishes_during_the_shutdown_grace_period(
    app: taskcast.App,
) -> None:
    gate = asyncio.Event()
    started = 0
    two_running = asyncio.Event()

    @app.task(name="part")
    async def part(i: int) -> int:
        nonlocal started
        started += 1
        if started == 2:
            two_running.set()
        await gate.wait()
        return i

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> list[int]:
        return await ctx.map("part", [{"i": i} for i in range(5)], concurrency=2)

    run = await app.submit("parent")
    await two_running.wait()
    async with asyncio.TaskGroup() as group:
        stopping = group.create_task(app.shutdown(grace=30, timeout=5))
        # Callbacks run in FIFO order: the shutdown's first step (which stops accepting runs)
        # runs before this one, so the rest of the batch is spawned during the grace period.
        asyncio.get_running_loop().call_soon(open_gate_in_grace, app, gate)
    report = stopping.result()
    assert run.id in report.finished and not report.interrupted and not report.queued
    assert started == 5


def open_gate_in_grace(app: taskcast.App, gate: asyncio.Event) -> None:
    assert not app.accepting
    gate.set()


async def test_a_parent_interrupted_by_shutdown_is_not_failed(app: taskcast.App) -> None:
    @app.task(name="forever")
    async def forever() -> None:
        await asyncio.Event().wait()

    @app.task(name="parent")
    async def parent(ctx: taskcast.Context) -> None:
        await ctx.map("forever", [{}] * 4, concurrency=2)

    run = await app.submit("parent")
    await wait_for_event(app, run.id, "child")
    report = await app.shutdown(grace=0, timeout=5)
    assert run.id in report.interrupted
    assert report.clean
