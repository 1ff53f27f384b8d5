"""API nodes and workers sharing one Redis, in one process: each App is a node of its own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import taskcast
from taskcast.server.metrics import Metrics
from taskcast.stores.redis import RedisStore

Nodes = Callable[..., taskcast.App]


def _register(app: taskcast.App, cleanups: list[str]) -> None:
    @app.task(name="steps")
    async def steps(n: int = 3) -> int:
        for _ in range(n):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return n

    @app.task(name="hold", retries=1)
    async def hold(ctx: taskcast.Context) -> Any:
        try:
            await ctx.emit("holding", {"attempt": ctx.attempt})
            return await ctx.signal("release")
        finally:
            cleanups.append(ctx.run_id)


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[Callable[..., taskcast.App]]:
    """Make started Apps on one Redis (same key prefix): ``nodes(worker=False)`` is an API node.
    Every node is shut down at the end of the test."""
    started: list[taskcast.App] = []
    cleanups: list[str] = []

    async def make(*, url: str = redis_url, **options: Any) -> taskcast.App:
        options.setdefault("grace", 0.0)
        options.setdefault("shutdown_timeout", 2.0)
        app = taskcast.App(url, **options)
        _register(app, cleanups)
        await app.start()
        started.append(app)
        return app

    try:
        yield make  # type: ignore[misc]
    finally:
        for app in reversed(started):
            if not app.stopped:
                await app.shutdown()


async def _until(app: taskcast.App, run_id: str, type: str) -> taskcast.Event:
    async with contextlib.aclosing(app.events(run_id)) as events:
        async for event in events:
            if event.type == type:
                return event
    raise AssertionError(f"run {run_id} ended without {type!r}")


async def test_a_run_submitted_on_an_api_node_runs_on_a_worker_and_is_watched_there(
    nodes: Nodes,
) -> None:
    api = await nodes(worker=False)
    await nodes()
    run = await api.submit("steps", n=3)
    log = [event async for event in api.events(run.id)]
    assert [e.type for e in log] == ["queued", "started", "completed"]
    assert [e.seq for e in log] == [1, 2, 3]
    assert (await api.get(run.id)).result == 3


async def test_an_api_node_runs_nothing_itself(nodes: Nodes) -> None:
    api = await nodes(worker=False)
    run = await api.submit("steps")
    assert api.stats()["running"] == 0
    worker = await nodes()
    assert (await worker.wait(run.id, timeout=10)).state is taskcast.RunState.COMPLETED


async def test_worker_false_needs_a_shared_store() -> None:
    app = taskcast.App("memory://", worker=False)
    with pytest.raises(ValueError, match="workers share"):
        await app.start()


async def test_a_cancel_on_the_api_node_stops_the_run_on_the_worker_and_cleanup_runs(
    nodes: Nodes,
) -> None:
    api = await nodes(worker=False)
    await nodes()
    run = await api.submit("hold")
    await _until(api, run.id, "holding")
    began = time.monotonic()
    assert await api.cancel(run.id, reason="user") is True
    done = await api.wait(run.id, timeout=5)
    assert time.monotonic() - began < 1.0
    assert done.state is taskcast.RunState.CANCELLED
    assert done.error == {"type": "Cancelled", "message": "user"}
    log = [event async for event in api.events(run.id)]
    assert [e.type for e in log][-1] == "cancelled"
    assert await api.cancel(run.id) is False  # finished: nothing to cancel
    answer = await api.request_cancel(run.id)  # the queue says how it ended, in one trip
    assert answer == taskcast.CancelAnswer(False, found=True, state=taskcast.RunState.CANCELLED)


async def test_a_cancel_of_a_queued_run_is_done_by_the_api_node_and_no_worker_runs_it(
    nodes: Nodes,
) -> None:
    api = await nodes(worker=False)
    run = await api.submit("steps")
    assert await api.cancel(run.id, reason="changed my mind") is True
    assert (await api.get(run.id)).state is taskcast.RunState.CANCELLED
    worker = await nodes()
    later = await api.submit("steps")
    assert (await worker.wait(later.id, timeout=10)).state is taskcast.RunState.COMPLETED
    log = [event.type async for event in api.events(run.id)]
    assert log == ["queued", "cancelled"]


async def test_a_signal_sent_on_the_api_node_reaches_the_run_on_the_worker(nodes: Nodes) -> None:
    api = await nodes(worker=False)
    await nodes()
    run = await api.submit("hold")
    await _until(api, run.id, "holding")
    await api.signal(run.id, "release", {"go": True})
    done = await api.wait(run.id, timeout=5)
    assert done.state is taskcast.RunState.COMPLETED and done.result == {"go": True}


async def test_a_signal_sent_before_any_worker_took_the_run_is_delivered(nodes: Nodes) -> None:
    api = await nodes(worker=False)
    run = await api.submit("hold")
    await api.signal(run.id, "release", "early")
    worker = await nodes()
    assert (await worker.wait(run.id, timeout=10)).result == "early"


async def test_a_signal_to_a_finished_run_raises_run_finished(nodes: Nodes) -> None:
    api = await nodes(worker=False)
    run = await api.submit("steps")
    await api.cancel(run.id)
    with pytest.raises(taskcast.RunFinished):
        await api.signal(run.id, "release")
    with pytest.raises(taskcast.RunNotFound):
        await api.signal("no-such-run", "release")


async def test_a_worker_that_shuts_down_hands_its_runs_back_at_once(
    nodes: Nodes, redis_server: Any
) -> None:
    from ..conftest import redis_url_for

    url = redis_url_for(redis_server, visibility_timeout=60)  # only a hand-back is fast
    api = await nodes(url=url, worker=False)
    first = await nodes(url=url)
    runs = [await api.submit("hold") for _ in range(3)]
    for run in runs:
        await _until(api, run.id, "holding")
    report = await first.shutdown()
    assert sorted(report.interrupted) == sorted(r.id for r in runs)
    began = time.monotonic()
    await nodes(url=url)
    for run in runs:
        await _until_attempt(api, run.id, 2)
        await api.signal(run.id, "release", "second")
    for run in runs:
        done = await api.wait(run.id, timeout=10)
        assert done.state is taskcast.RunState.COMPLETED and done.attempt == 2
    assert time.monotonic() - began < 10  # well under the 60 s visibility timeout
    log = [event.type async for event in api.events(runs[0].id)]
    assert log == [
        "queued", "started", "holding", "shutdown", "retrying", "started", "holding",
        "signal", "completed",
    ]  # fmt: skip


async def _until_attempt(app: taskcast.App, run_id: str, attempt: int) -> None:
    async with contextlib.aclosing(app.events(run_id)) as events:
        async for event in events:
            if event.type == "holding" and event.data["attempt"] == attempt:
                return
    raise AssertionError(f"run {run_id} ended before attempt {attempt}")


async def test_a_worker_takes_only_runs_of_tasks_it_registers(redis_url: str) -> None:
    api = taskcast.App(redis_url, worker=False)
    only_a = taskcast.App(redis_url, grace=0.0)

    @api.task(name="a")
    @api.task(name="b")
    async def job() -> str:
        return "done"

    only_a.task(name="a")(job)
    async with api, only_a:
        b = await api.submit("b")
        a = await api.submit("a")
        assert (await api.wait(a.id, timeout=10)).state is taskcast.RunState.COMPLETED
        assert (await api.get(b.id)).state is taskcast.RunState.QUEUED


async def test_the_queue_bound_holds_across_api_nodes(nodes: Nodes) -> None:
    one = await nodes(worker=False, max_queue=3)
    two = await nodes(worker=False, max_queue=3)
    await one.submit("steps")
    await two.submit("steps")
    await one.submit("steps")
    with pytest.raises(taskcast.QueueFull):
        await two.submit("steps")


async def test_prune_deletes_finished_runs_their_logs_and_their_counts(nodes: Nodes) -> None:
    api = await nodes(worker=False)
    runs = [await api.submit("steps") for _ in range(3)]
    for run in runs:
        await api.cancel(run.id)
    assert (await api.count_runs())[("steps", taskcast.RunState.CANCELLED)] == 3
    assert await api.prune(older_than=0) == 3
    assert await api.runs() == []
    assert await api.count_runs() == {}
    store = api.store
    assert isinstance(store, RedisStore)
    assert await store.read_events(runs[0].id) == []


async def test_run_records_load_when_they_carry_fields_this_version_does_not_know(
    nodes: Nodes,
) -> None:
    api = await nodes(worker=False)
    run = await api.submit("steps")
    store = api.store
    assert isinstance(store, RedisStore)
    await store.client.hset(f"{store.prefix}run:{run.id}", "from_the_future", '"x"')
    assert (await api.get(run.id)).id == run.id


async def test_watchers_on_another_node_resume_after_any_seq(nodes: Nodes) -> None:
    api = await nodes(worker=False)
    worker = await nodes()
    run = await api.submit("steps", n=2)
    await worker.wait(run.id, timeout=10)
    tail = [event.seq async for event in api.events(run.id, after=1)]
    assert tail == [2, 3]


async def test_metrics_on_an_api_node_count_the_whole_deployments_queue(nodes: Nodes) -> None:
    api = await nodes(worker=False)
    for _ in range(3):
        await api.submit("steps")  # no worker: they stay queued
    text = (await Metrics(api).render()).decode()
    assert "taskcast_queued 3.0" in text
    assert "taskcast_running 0.0" in text
