"""Dependencies between runs: submit(..., after=[ids])."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import taskcast
from tests.engine.conftest import Gate, collect, types


class Boom(Exception):
    pass


def register(app: taskcast.App, gate: Gate | None = None) -> list[str]:
    order: list[str] = []

    @app.task(name="step")
    async def step(ctx: taskcast.Context, name: str, fail: bool = False, wait: bool = False) -> str:
        if wait and gate is not None:
            await gate()
        order.append(name)
        if fail:
            raise Boom(f"{name} broke")
        return name

    return order


async def test_a_run_waits_for_the_runs_it_is_submitted_after(app: taskcast.App) -> None:
    gate = Gate()
    order = register(app, gate)
    first = await app.submit("step", name="first", wait=True)
    second = await app.submit_with("step", {"name": "second"}, after=[first.id])
    await gate.reached.wait()
    assert (await app.get(second.id)).state is taskcast.RunState.QUEUED
    gate.opened.set()
    done = await app.wait(second.id, timeout=10)
    assert done.state is taskcast.RunState.COMPLETED
    assert order == ["first", "second"]
    assert done.after == [first.id]


async def test_a_run_after_finished_runs_starts_at_once(app: taskcast.App) -> None:
    register(app)
    first = await app.submit("step", name="first")
    await app.wait(first.id, timeout=10)
    second = await app.submit_with("step", {"name": "second"}, after=[first.id])
    assert (await app.wait(second.id, timeout=10)).state is taskcast.RunState.COMPLETED


async def test_a_failed_dependency_fails_its_dependents_naming_it(app: taskcast.App) -> None:
    order = register(app)
    first = await app.submit("step", name="first", fail=True)
    second = await app.submit_with("step", {"name": "second"}, after=[first.id])
    third = await app.submit_with("step", {"name": "third"}, after=[second.id])
    done = await app.wait(third.id, timeout=10)
    second_done = await app.get(second.id)
    assert second_done.state is taskcast.RunState.FAILED
    assert second_done.error["type"] == "DependencyFailed"
    message = second_done.error["message"]
    assert first.id in message and "first broke" in message
    assert done.state is taskcast.RunState.FAILED
    assert second.id in done.error["message"]
    assert order == ["first"]
    assert types(await collect(app, second.id)) == ["queued", "failed"]


async def test_a_cancelled_dependency_fails_its_dependents(app: taskcast.App) -> None:
    gate = Gate()
    register(app, gate)
    first = await app.submit("step", name="first", wait=True)
    second = await app.submit_with("step", {"name": "second"}, after=[first.id])
    await gate.reached.wait()
    await app.cancel(first.id, reason="not needed")
    done = await app.wait(second.id, timeout=10)
    assert done.state is taskcast.RunState.FAILED
    assert f"dependency {first.id} was cancelled: not needed" == done.error["message"]


async def test_after_policy_always_runs_the_dependent_anyway(app: taskcast.App) -> None:
    order = register(app)
    first = await app.submit("step", name="first", fail=True)
    cleanup = await app.submit_with(
        "step", {"name": "cleanup"}, after=[first.id], after_policy="always"
    )
    assert (await app.wait(cleanup.id, timeout=10)).state is taskcast.RunState.COMPLETED
    assert order == ["first", "cleanup"]


async def test_an_unknown_dependency_is_refused_naming_it(app: taskcast.App) -> None:
    register(app)
    with pytest.raises(taskcast.InvalidRequest, match="no run with id 'nope'"):
        await app.submit_with("step", {"name": "x"}, after=["nope"])
    assert await app.runs() == []


async def test_a_cycle_is_refused_at_submit(app: taskcast.App) -> None:
    gate = Gate()
    register(app, gate)
    await app.submit_with("step", {"name": "a", "wait": True}, id="a")
    await app.submit_with("step", {"name": "b"}, id="b", after=["a"])
    await app.submit_with("step", {"name": "c"}, id="c", after=["b"])
    with pytest.raises(taskcast.InvalidRequest, match="cycle") as caught:
        await app.submit_with("step", {"name": "a"}, id="a", after=["c"])
    assert "a -> c -> b -> a" in caught.value.message
    gate.opened.set()


async def test_a_run_cannot_wait_for_itself(app: taskcast.App) -> None:
    register(app)
    with pytest.raises(taskcast.InvalidRequest, match="itself"):
        await app.submit_with("step", {"name": "x"}, id="x", after=["x"])


async def test_a_bad_after_policy_is_refused(app: taskcast.App) -> None:
    register(app)
    with pytest.raises(taskcast.InvalidRequest, match="after_policy"):
        await app.submit_with("step", {"name": "x"}, after_policy="sometimes")


async def test_a_run_waiting_for_dependencies_can_be_cancelled(app: taskcast.App) -> None:
    gate = Gate()
    order = register(app, gate)
    first = await app.submit("step", name="first", wait=True)
    second = await app.submit_with("step", {"name": "second"}, after=[first.id])
    assert await app.cancel(second.id)
    gate.opened.set()
    await app.wait(first.id, timeout=10)
    assert (await app.get(second.id)).state is taskcast.RunState.CANCELLED
    assert order == ["first"]


async def test_dependents_under_a_limit_of_one_do_not_deadlock(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app(max_concurrency=1)
    order = register(app)
    async with app:
        previous = await app.submit("step", name="0")
        chain = [previous]
        for i in range(1, 20):
            previous = await app.submit_with("step", {"name": str(i)}, after=[previous.id])
            chain.append(previous)
        assert (await app.wait(chain[-1].id, timeout=20)).state is taskcast.RunState.COMPLETED
    assert order == [str(i) for i in range(20)]


async def test_a_dependency_finishing_during_submit_is_not_missed(app: taskcast.App) -> None:
    register(app)
    for _ in range(50):
        first = await app.submit("step", name="first")
        second = await app.submit_with("step", {"name": "second"}, after=[first.id])
        done = await asyncio.wait_for(app.wait(second.id), timeout=10)
        assert done.state is taskcast.RunState.COMPLETED
