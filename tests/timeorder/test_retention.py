"""Retention: finished runs beyond a count or an age are pruned with their logs, in the
background; unfinished runs, and runs a dependent waits for, never are."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import taskcast

from .conftest import started


def counting_app(make_app: Callable[..., taskcast.App], **options: object) -> taskcast.App:
    app = make_app(**options)

    @app.task
    async def noop(n: int = 0) -> int:
        return n

    @app.task(retention="forever")
    async def kept() -> None: ...

    @app.task
    async def held(ctx: taskcast.Context) -> None:
        await ctx.signal("go")

    return app


async def run_all(app: taskcast.App, task: str, count: int) -> list[taskcast.Run]:
    runs = await app.submit_many(task, [{}] * count)
    return [await app.wait(run.id, timeout=10) for run in runs]


async def test_finished_runs_beyond_the_count_are_pruned_oldest_first(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(counting_app(make_app, retention="10")) as app:
        runs = await run_all(app, "noop", 25)
        assert await app.prune_now() == 15
        left = {run.id for run in await app.runs(task="noop")}
        newest = sorted(runs, key=lambda run: run.finished_at or 0)[-10:]
        assert left == {run.id for run in newest}
        with pytest.raises(taskcast.RunNotFound):
            await app.get(runs[0].id)
        assert await app.store.read_events(runs[0].id) == []


@pytest.mark.virtual_time
async def test_finished_runs_older_than_the_age_are_pruned(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(counting_app(make_app, retention="1h")) as app:
        old = await run_all(app, "noop", 3)
        await asyncio.sleep(3600 + 1)
        new = await run_all(app, "noop", 2)
        await app.prune_now()  # what the background passes have not pruned yet
        assert app.time_counts()["runs_pruned"] == 3
        assert {run.id for run in await app.runs(task="noop")} == {run.id for run in new}
        assert [await exists(app, run.id) for run in old] == [False] * 3


async def test_unfinished_runs_are_never_pruned(make_app: Callable[..., taskcast.App]) -> None:
    async with started(counting_app(make_app, retention="0")) as app:
        waiting = await app.submit("held")
        later = await app.submit_with("noop", delay=600)
        await run_all(app, "noop", 3)
        await app.prune_now()
        assert (await app.get(waiting.id)).state in ("queued", "running")
        assert (await app.get(later.id)).state == "scheduled"
        await app.signal(waiting.id, "go")
        await app.wait(waiting.id, timeout=5)


async def test_a_run_a_dependent_waits_for_is_not_pruned(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(counting_app(make_app, retention="0")) as app:
        gate = await app.submit("held")
        (done,) = await run_all(app, "noop", 1)
        dependent = await app.submit_with("noop", after=[done.id, gate.id])
        await app.prune_now()
        assert await exists(app, done.id)
        await app.signal(gate.id, "go")
        assert (await app.wait(dependent.id, timeout=5)).state == "completed"


async def test_a_tasks_own_retention_wins_over_the_apps(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(counting_app(make_app, retention="0")) as app:
        kept = await run_all(app, "kept", 3)
        await run_all(app, "noop", 3)
        await app.prune_now()
        assert {run.id for run in await app.runs(task="kept")} == {run.id for run in kept}
        assert await app.runs(task="noop") == []


@pytest.mark.virtual_time
async def test_pruning_runs_in_the_background(make_app: Callable[..., taskcast.App]) -> None:
    async with started(counting_app(make_app, retention="5")) as app:
        await run_all(app, "noop", 20)
        await asyncio.sleep(61)  # the pruner's interval passes (virtual)
        assert len(await app.runs(task="noop")) == 5
        assert app.time_counts()["runs_pruned"] == 15


def test_the_memory_store_keeps_10000_finished_runs_for_an_hour_by_default() -> None:
    assert taskcast.App("memory://").retention == taskcast.Retention(age=3600, count=10_000)


def test_sqlite_keeps_finished_runs_7_days_by_default(tmp_path: object) -> None:
    app = taskcast.App(f"sqlite:///{tmp_path}/runs.db")
    assert app.retention == taskcast.Retention(age=7 * 86400)


@pytest.mark.parametrize("text", ["7 days", "1h,2h", "-5", "1w", ""])
def test_bad_retention_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="retention"):
        taskcast.App(retention=text)


async def exists(app: taskcast.App, run_id: str) -> bool:
    try:
        await app.get(run_id)
    except taskcast.RunNotFound:
        return False
    return True
