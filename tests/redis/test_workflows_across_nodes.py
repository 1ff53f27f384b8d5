"""Workflows across nodes sharing one Redis, in one process (each App a node of its own, with
its own connections, subscription and consumer): children run where their task is registered,
cancels and deadlines reach them there, dependents are released by the node that ends their
dependency, and nothing is missed while a node's subscription is broken."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import taskcast
from taskcast.stores.redis import RedisStore

Node = Callable[..., Awaitable[taskcast.App]]


@pytest.fixture
async def node(redis_url: str) -> AsyncIterator[Node]:
    """``await node(register)``: a started App on the test's Redis, its tasks registered by
    ``register(app)`` first; ``worker=False`` makes an API node. All are shut down at the end."""
    started: list[taskcast.App] = []

    async def make(register: Callable[[taskcast.App], None], **options: Any) -> taskcast.App:
        options.setdefault("grace", 0.0)
        options.setdefault("shutdown_timeout", 2.0)
        app = taskcast.App(redis_url, **options)
        register(app)
        await app.start()
        started.append(app)
        return app

    try:
        yield make
    finally:
        for app in reversed(started):
            if not app.stopped:
                await app.shutdown()


def store_of(app: taskcast.App) -> RedisStore:
    assert isinstance(app.store, RedisStore)
    return app.store


async def until_event(app: taskcast.App, run_id: str, type: str) -> taskcast.Event:
    async with contextlib.aclosing(app.events(run_id)) as events:
        async for event in events:
            if event.type == type:
                return event
    raise AssertionError(f"run {run_id} ended without {type!r}: {await app.get(run_id)}")


async def until_count(app: taskcast.App, run_id: str, type: str, count: int) -> None:
    seen = 0
    async with contextlib.aclosing(app.events(run_id)) as events:
        async for event in events:
            seen += event.type == type
            if seen == count:
                return
    raise AssertionError(f"run {run_id} ended with {seen} {type!r} events, not {count}")


def hold_resubscribing(app: taskcast.App) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the node's next re-subscription wait: returns ``(reached, release)``, set when it
    tries to subscribe again, and to let it."""
    store = store_of(app)
    reached, release = asyncio.Event(), asyncio.Event()
    subscribe = store._subscribe

    async def held() -> Any:
        reached.set()
        await release.wait()
        return await subscribe()

    store._subscribe = held  # type: ignore[method-assign]
    return reached, release


async def break_subscriptions(app: taskcast.App) -> None:
    """Close every pub/sub connection of the Redis server, as a network failure would."""
    await store_of(app).client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")


def tasks(app: taskcast.App, log: list[str]) -> None:
    """Parents and children; ``log`` records which children held and cleaned up."""

    @app.task(name="fan_forever")
    async def fan_forever(ctx: taskcast.Context, n: int) -> None:
        await ctx.map("forever", [{"i": i} for i in range(n)])

    @app.task(name="forever")
    async def forever(ctx: taskcast.Context, i: int) -> None:
        log.append(f"holding {ctx.run_id}")
        try:
            await asyncio.Event().wait()
        finally:
            log.append(f"cleaned {ctx.run_id}")

    @app.task(name="squares")
    async def squares(ctx: taskcast.Context, n: int) -> list[int]:
        return await ctx.map("square", [{"i": i} for i in range(n)])

    @app.task(name="square")
    async def square(i: int) -> int:
        return i * i

    @app.task(name="capped", timeout=5)
    async def capped(ctx: taskcast.Context) -> dict[str, Any]:
        left = ctx.time_left()
        child = await ctx.spawn("remaining")
        # Waits for a signal, not for the child: it keeps its node's one slot, so the child
        # runs on the other node.
        await ctx.signal("go")
        return {"left": left, "child": child.run_id}

    @app.task(name="remaining", timeout=3600)
    async def remaining(ctx: taskcast.Context) -> float | None:
        return ctx.time_left()

    @app.task(name="awaits_held")
    async def awaits_held(ctx: taskcast.Context) -> Any:
        child = await ctx.spawn("held")
        await ctx.signal("child-started")  # (keeping its node's one slot meanwhile)
        return await child

    @app.task(name="held")
    async def held(ctx: taskcast.Context) -> Any:
        await ctx.emit("waiting")
        return await ctx.signal("go")


async def test_cancelling_a_parent_cancels_its_children_on_another_node(node: Node) -> None:
    log: list[str] = []
    api = await node(lambda app: tasks(app, log), worker=False)
    await node(lambda app: tasks(app, log), max_concurrency=1)  # the parent, and one child at most
    await node(lambda app: tasks(app, log))
    run = await api.submit("fan_forever", n=3)
    await until_count(api, run.id, "child", 3)
    for i in range(3):
        await until_event(api, f"{run.id}.{i}", "started")
    assert await api.cancel(run.id, reason="user")
    assert (await api.wait(run.id, timeout=30)).state is taskcast.RunState.CANCELLED
    for i in range(3):
        child = await api.get(f"{run.id}.{i}")
        assert child.state is taskcast.RunState.CANCELLED
        assert child.error == {
            "type": "Cancelled",
            "message": f"its parent {run.id} was cancelled",
        }
    assert sorted(e for e in log if e.startswith("cleaned")) == sorted(
        f"cleaned {run.id}.{i}" for i in range(3)
    )


async def test_a_childs_deadline_on_another_node_never_exceeds_its_parents(node: Node) -> None:
    api = await node(lambda app: tasks(app, []), worker=False)
    await node(lambda app: tasks(app, []), max_concurrency=1)
    await node(lambda app: tasks(app, []))
    run = await api.submit("capped")
    child = await until_event(api, run.id, "child")
    child_left = (await api.wait(child.data["run_id"], timeout=30)).result
    await api.signal(run.id, "go")
    done = await api.wait(run.id, timeout=30)
    assert done.state is taskcast.RunState.COMPLETED, done.error
    assert child_left is not None and child_left <= done.result["left"] <= 5


async def test_a_dependent_is_released_by_the_node_that_ends_its_dependency(node: Node) -> None:
    ran: list[str] = []

    def steps(app: taskcast.App, record: list[str] | None = None) -> None:
        @app.task(name="step")
        async def step(name: str, fail: bool = False) -> str:
            if record is not None:
                record.append(name)
            if fail:
                raise RuntimeError(f"{name} broke")
            return name

    api = await node(steps, worker=False)
    first = await api.submit("step", name="first")
    second = await api.submit_with("step", {"name": "second"}, after=[first.id])
    broken = await api.submit("step", name="broken", fail=True)
    blocked = await api.submit_with("step", {"name": "blocked"}, after=[broken.id, second.id])
    assert (await api.get(second.id)).state is taskcast.RunState.QUEUED
    await node(lambda app: steps(app, ran))  # the only worker: it ends and releases them all
    assert (await api.wait(second.id, timeout=30)).state is taskcast.RunState.COMPLETED
    failed = await api.wait(blocked.id, timeout=30)
    assert failed.state is taskcast.RunState.FAILED
    assert failed.error == {
        "type": "DependencyFailed",
        "message": f"dependency {broken.id} failed: broken broke",
    }
    assert "blocked" not in ran and ran.index("first") < ran.index("second")


async def test_a_signal_logged_while_the_workers_subscription_is_down_is_delivered(
    node: Node,
) -> None:
    def waits(app: taskcast.App) -> None:
        @app.task(name="waits")
        async def waits_for_signal(ctx: taskcast.Context) -> Any:
            await ctx.emit("waiting")
            return await ctx.signal("go")

    api = await node(waits, worker=False)
    worker = await node(waits)
    run = await api.submit("waits")
    await until_event(api, run.id, "waiting")
    reached, release = hold_resubscribing(worker)
    await break_subscriptions(worker)
    await reached.wait()  # the worker lost its subscription and has not come back
    await api.signal(run.id, "go", {"sent": "while away"})
    release.set()
    done = await api.wait(run.id, timeout=30)
    assert done.state is taskcast.RunState.COMPLETED
    assert done.result == {"sent": "while away"}


async def test_a_child_ending_while_its_parents_subscription_is_down_is_not_missed(
    node: Node,
) -> None:
    api = await node(lambda app: tasks(app, []), worker=False)
    parents = await node(lambda app: tasks(app, []), max_concurrency=1)
    await node(lambda app: tasks(app, []))
    run = await api.submit("awaits_held")
    child_id = f"{run.id}.0"
    await until_count(api, run.id, "child", 1)
    await until_event(api, child_id, "waiting")  # held by the other node: the parent's is full
    await api.signal(run.id, "child-started")
    reached, release = hold_resubscribing(parents)
    await break_subscriptions(parents)
    await reached.wait()
    await api.signal(child_id, "go", "done while the parent's node was away")
    assert (await api.wait(child_id, timeout=30)).state is taskcast.RunState.COMPLETED
    release.set()
    done = await api.wait(run.id, timeout=30)
    assert done.state is taskcast.RunState.COMPLETED
    assert done.result == "done while the parent's node was away"


async def test_a_child_that_ends_before_its_parents_node_hears_it_was_stored_is_not_missed(
    node: Node,
) -> None:
    api = await node(lambda app: tasks(app, []), worker=False)
    parents = await node(lambda app: tasks(app, []), max_concurrency=1)  # children go elsewhere
    children = await node(lambda app: tasks(app, []))
    store = store_of(parents)
    create_run = store.create_run

    async def answered_late(run: taskcast.Run, data: dict[str, Any], **options: Any) -> Any:
        created = await create_run(run, data, **options)
        if run.parent_id is not None:  # the child is stored: let it end before we hear so
            await children.wait(run.id, timeout=30)
        return created

    store.create_run = answered_late  # type: ignore[method-assign]
    run = await api.submit("squares", n=3)
    done = await api.wait(run.id, timeout=30)
    assert done.state is taskcast.RunState.COMPLETED, done.error
    assert done.result == [0, 1, 4]
