"""Delayed runs: ``run_at`` / ``delay`` make a run ``scheduled`` until its time (virtual time)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import taskcast

from .conftest import lifecycle, started

pytestmark = pytest.mark.virtual_time


def noop_app(make_app: Callable[..., taskcast.App], **options: object) -> taskcast.App:
    app = make_app(**options)

    @app.task
    async def noop() -> str:
        return "done"

    return app


async def test_a_delayed_run_is_scheduled_until_its_time_then_runs(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(noop_app(make_app)) as app:
        run = await app.submit_with("noop", delay=3600)
        assert run.state == "scheduled" and run.run_at is not None
        assert (await app.get(run.id)).state == "scheduled"
        finished = await app.wait(run.id, timeout=7200)
        assert finished.state == "completed"
        assert await lifecycle(app, run.id) == ["scheduled", "queued", "started", "completed"]


async def test_a_run_at_time_starts_at_that_time(make_app: Callable[..., taskcast.App]) -> None:
    async with started(noop_app(make_app)) as app:
        loop = asyncio.get_running_loop()
        began = loop.time()
        when = datetime.now(timezone(timedelta(hours=5))) + timedelta(minutes=30)
        run = await app.submit_with("noop", run_at=when)
        await app.wait(run.id, timeout=3600)
        assert loop.time() - began == pytest.approx(1800, abs=1)


async def test_a_run_at_in_the_past_starts_at_once(make_app: Callable[..., taskcast.App]) -> None:
    async with started(noop_app(make_app)) as app:
        run = await app.submit_with("noop", run_at=datetime.now(UTC) - timedelta(days=1))
        assert run.state == "queued"
        assert (await app.wait(run.id, timeout=5)).state == "completed"


async def test_a_scheduled_run_holds_no_slot(make_app: Callable[..., taskcast.App]) -> None:
    async with started(noop_app(make_app, max_concurrency=1)) as app:
        later = await app.submit_with("noop", delay=600)
        now = await app.submit("noop")
        assert (await app.wait(now.id, timeout=5)).state == "completed"
        assert (await app.get(later.id)).state == "scheduled"
        assert app.stats()["scheduled"] == 1


async def test_a_cancelled_scheduled_run_ends_cancelled_and_never_runs(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(noop_app(make_app)) as app:
        run = await app.submit_with("noop", delay=60)
        assert await app.cancel(run.id, "not needed") is True
        await asyncio.sleep(120)  # past its time (virtual)
        assert (await app.get(run.id)).state == "cancelled"
        assert await lifecycle(app, run.id) == ["scheduled", "cancelled"]


async def test_scheduled_runs_are_listed_by_their_state(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(noop_app(make_app)) as app:
        later = await app.submit_with("noop", delay=600)
        await app.wait((await app.submit("noop")).id, timeout=5)
        assert [run.id for run in await app.runs(state="scheduled")] == [later.id]


async def test_many_runs_due_at_once_all_start(make_app: Callable[..., taskcast.App]) -> None:
    async with started(noop_app(make_app, max_concurrency=10)) as app:
        runs = await app.submit_many("noop", [{}] * 200, delay=30)
        assert {run.state for run in runs} == {"scheduled"}
        for run in runs:
            assert (await app.wait(run.id, timeout=60)).state == "completed"


async def test_a_run_due_while_the_process_was_down_starts_at_once_on_restart(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with started(noop_app(lambda: taskcast.App(url, grace=0.0))) as app:
        run = await app.submit_with("noop", delay=600)
    await asyncio.sleep(900)  # the process is down past the run's time (virtual)
    async with started(noop_app(lambda: taskcast.App(url, grace=0.0))) as app:
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert (await app.wait(run.id, timeout=5)).state == "completed"
        assert loop.time() - began < 1  # at once, not after another wait


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"run_at": datetime(2030, 1, 1, 9)}, "run_at", id="no-offset"),
        pytest.param({"run_at": datetime.now(UTC) + timedelta(days=400)}, "run_at", id="too-far"),
        pytest.param({"delay": -1}, "delay", id="negative-delay"),
        pytest.param({"delay": float("nan")}, "delay", id="nan-delay"),
        pytest.param({"delay": 5, "run_at": datetime.now(UTC)}, "run_at", id="both-given"),
        pytest.param({"priority": 10}, "priority", id="priority-10"),
        pytest.param({"priority": -1}, "priority", id="priority-negative"),
        pytest.param({"priority": True}, "priority", id="priority-bool"),
    ],
)
async def test_bad_times_and_priorities_are_refused_naming_the_field(
    make_app: Callable[..., taskcast.App], options: dict[str, object], field: str
) -> None:
    async with started(noop_app(make_app)) as app:
        with pytest.raises(taskcast.InvalidRequest) as refused:
            await app.submit_with("noop", **options)  # type: ignore[arg-type]
        assert refused.value.details["param"] == field
        assert field in refused.value.message
        assert await app.runs() == []


async def test_a_delayed_run_waits_for_its_dependencies_after_its_time(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = noop_app(make_app)

    @app.task
    async def gate(ctx: taskcast.Context) -> None:
        await ctx.signal("go")

    async with started(app):
        first = await app.submit("gate")
        later = await app.submit_with("noop", delay=60, after=[first.id])
        assert (await app.get(later.id)).state == "scheduled"
        await asyncio.sleep(120)  # past its time (virtual): queued, held by its dependency
        held = await app.get(later.id)
        assert (held.state, held.waiting_for) == ("queued", "dependencies")
        await app.signal(first.id, "go")
        assert (await app.wait(later.id, timeout=5)).state == "completed"
