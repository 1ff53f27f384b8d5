"""Workflows over real ``taskcast worker`` processes on one Redis: children spread over the
workers, the deadlock rule and a task's ``concurrency`` hold however runs spread, and a parent
whose worker is killed (-9) gets its completed children back when it is re-delivered."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import taskcast

from .processes import worker
from .sample_app import app as sample_app


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[taskcast.App]:
    """An API node in this process (submits and watches; runs nothing) with the sample tasks."""
    node = taskcast.App(redis_url, worker=False)
    node.tasks.update(sample_app.tasks)
    async with node:
        yield node


async def events_until(app: taskcast.App, run_id: str, type: str, **data: object) -> taskcast.Event:
    """The first event of the run of that type whose data holds ``data``."""
    async with contextlib.aclosing(app.events(run_id)) as events:
        async for event in events:
            if event.type == type and all(event.data.get(k) == v for k, v in data.items()):
                return event
    raise AssertionError(f"run {run_id} ended without {type!r} {data}")


async def test_the_children_of_one_parent_run_on_both_workers(
    tmp_path: Path, redis_url: str, api: taskcast.App
) -> None:
    with (
        worker(tmp_path, redis_url, "--concurrency", "4", name="w1") as first,
        worker(tmp_path, redis_url, "--concurrency", "4", name="w2") as second,
    ):
        run = await api.submit("fan", n=40, delay=0.05)
        done = await api.wait(run.id, timeout=60)
        assert done.state is taskcast.RunState.COMPLETED, done.error
        assert set(done.result) == {first.pid, second.pid}


@pytest.mark.parametrize(
    ("task", "concurrency"),
    [("tree", "1"), ("limited_tree", "10")],
    ids=["one-slot-per-worker", "task-concurrency-1-for-the-deployment"],
)
async def test_nested_children_under_a_limit_of_one_on_two_workers_complete(
    tmp_path: Path, redis_url: str, api: taskcast.App, task: str, concurrency: str
) -> None:
    with (
        worker(tmp_path, redis_url, "--concurrency", concurrency, name="w1"),
        worker(tmp_path, redis_url, "--concurrency", concurrency, name="w2"),
    ):
        runs = [await api.submit(task, depth=2) for _ in range(2)]
        for run in runs:
            done = await api.wait(run.id, timeout=90)
            assert done.state is taskcast.RunState.COMPLETED, done.error
            assert done.result == 9


async def test_a_tasks_concurrency_holds_across_workers(
    tmp_path: Path, redis_url: str, api: taskcast.App
) -> None:
    with (
        worker(tmp_path, redis_url, "--concurrency", "10", name="w1"),
        worker(tmp_path, redis_url, "--concurrency", "10", name="w2"),
    ):
        runs = [await api.submit("two_at_once", delay=0.2) for _ in range(8)]
        done = [await api.wait(run.id, timeout=60) for run in runs]
    assert all(run.state is taskcast.RunState.COMPLETED for run in done)
    # Each run holds its place from before its `started` write until its terminal write, so
    # the recorded attempts of the task never overlap by more than its concurrency.
    edges = sorted(
        [(run.started_at, 1) for run in done] + [(run.finished_at, -1) for run in done],
        key=lambda edge: (edge[0], edge[1]),
    )
    at_once = most = 0
    for _, step in edges:
        at_once += step
        most = max(most, at_once)
    assert most == 2


async def test_a_parent_whose_worker_is_killed_gets_its_completed_children_back(
    tmp_path: Path, redis_url: str, api: taskcast.App
) -> None:
    with (
        worker(tmp_path, redis_url, name="w1") as first,
        worker(tmp_path, redis_url, name="w2") as second,
    ):
        run = await api.submit("keeps_children")
        holder = (await events_until(api, run.id, "worker", attempt=1)).data["pid"]
        waiting = await events_until(api, run.id, "waiting", attempt=1)
        victim, survivor = (first, second) if holder == first.pid else (second, first)
        victim.signal(signal.SIGKILL)
        victim.wait(10)
        resumed = await events_until(api, run.id, "waiting", attempt=2)
        assert resumed.data["child"] == waiting.data["child"]
        await api.signal(resumed.data["child"], "release", "second")
        done = await api.wait(run.id, timeout=60)
        assert survivor.process.poll() is None
    assert done.state is taskcast.RunState.COMPLETED, done.error
    first_child = f"{run.id}.0"
    assert done.result[0] == (await api.get(first_child)).result
    starts = [event async for event in api.events(first_child) if event.type == "started"]
    assert len(starts) == 1  # the completed child was given back, not run again
