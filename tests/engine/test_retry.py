"""``App.retry``: a new run of the same task and arguments, linked to the old one by
``retry_of``, for a run that failed, was cancelled, timed out or was interrupted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import taskcast
from taskcast.ids import new_run_id
from taskcast.states import RunState

from .conftest import wait_for_event


def register_flaky(app: taskcast.App) -> list[int]:
    """``flaky(n)`` fails on its first call and returns ``n`` after; returns the calls' list."""
    calls: list[int] = []

    @app.task(name="flaky")
    async def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        return n

    return calls


async def test_a_failed_run_is_retried_as_a_new_run_with_its_task_arguments_and_options(
    app: taskcast.App,
) -> None:
    register_flaky(app)
    failed = await app.submit_with("flaky", {"n": 7}, timeout=30, max_attempts=1)
    assert (await app.wait(failed.id, timeout=10)).state is RunState.FAILED
    retried = await app.retry(failed.id)
    assert retried.id != failed.id
    assert (retried.task, retried.args, retried.retry_of) == ("flaky", {"n": 7}, failed.id)
    assert (retried.timeout, retried.max_attempts) == (30, 1)
    done = await app.wait(retried.id, timeout=10)
    assert (done.state, done.result, done.retry_of) == (RunState.COMPLETED, 7, failed.id)
    assert (await app.get(failed.id)).state is RunState.FAILED  # the old run is kept as it was


async def test_cancelled_and_timed_out_runs_can_be_retried(app: taskcast.App) -> None:
    @app.task(name="waits")
    async def waits(ctx: taskcast.Context) -> None:
        await ctx.signal("go")

    cancelled = await app.submit("waits")
    await wait_for_event(app, cancelled.id, "started")
    await app.cancel(cancelled.id)
    timed_out = await app.submit_with("waits", timeout=0.05)
    for run in (cancelled, timed_out):
        await app.wait(run.id, timeout=10)
        retried = await app.retry(run.id)
        assert retried.retry_of == run.id
        await app.cancel(retried.id)
    assert (await app.get(timed_out.id)).state is RunState.TIMED_OUT


async def test_a_completed_queued_or_running_run_is_not_retried(app: taskcast.App) -> None:
    release = asyncio.Event()

    @app.task(name="holds", concurrency=1)
    async def holds() -> None:
        await release.wait()

    running = await app.submit("holds")
    queued = await app.submit("holds")  # waits for the one slot
    await wait_for_event(app, running.id, "started")
    for run, state in ((running, "running"), (queued, "queued")):
        with pytest.raises(taskcast.NotRetryable, match=f"is {state}; only a failed") as refused:
            await app.retry(run.id)
        assert refused.value.details == {"run_id": run.id, "state": state}
    release.set()
    await app.wait(queued.id, timeout=10)
    with pytest.raises(taskcast.NotRetryable, match="is completed"):
        await app.retry(running.id)
    assert [run.retry_of for run in await app.runs()] == [None, None]


async def test_retrying_an_unknown_run_raises_run_not_found(app: taskcast.App) -> None:
    with pytest.raises(taskcast.RunNotFound):
        await app.retry("NOPE")


async def test_an_interrupted_run_is_cancelled_when_it_is_retried(
    make_app: Callable[..., taskcast.App], store_url: str
) -> None:
    # On a shared store the run would be taken by this app's worker: an API node only.
    app = make_app(worker=not store_url.startswith("redis"))
    register_flaky(app)
    async with app:
        # Left running by a process that stopped: written into the store as such.
        run = taskcast.Run(new_run_id(), "flaky", {"n": 1})
        await app.store.create_run(run, {"task": "flaky"}, fresh_id=True)
        await app.store.transition(run.id, RunState.RUNNING, "started", {"attempt": 1}, attempt=1)
        await app.store.transition(run.id, RunState.INTERRUPTED, "shutdown", {})
        retried = await app.retry(run.id)
        old = await app.get(run.id)
        assert old.state is RunState.CANCELLED
        assert old.error == {"type": "Cancelled", "message": "retried as a new run"}
        assert retried.retry_of == run.id and retried.state is RunState.QUEUED
        await app.cancel(retried.id)
