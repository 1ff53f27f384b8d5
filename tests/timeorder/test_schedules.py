"""Schedules: one run per tick, however often it is fired; catch-up, pause, resume, trigger
(virtual time for the ticks)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import taskcast
from taskcast.schedules import Schedule

from .conftest import started


def ticking_app(make_app: Callable[..., taskcast.App], **schedule: object) -> taskcast.App:
    app = make_app()

    @app.task
    async def report(kind: str = "daily") -> str:
        return kind

    schedule.setdefault("every", 60)
    app.schedule("reports", "report", {"kind": "hourly"}, **schedule)  # type: ignore[arg-type]
    return app


async def scheduled_runs(app: taskcast.App) -> list[taskcast.Run]:
    return await app.runs(task="report")


@pytest.mark.virtual_time
async def test_every_tick_starts_one_run_with_the_schedules_args(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(ticking_app(make_app)) as app:
        await asyncio.sleep(60 * 3 + 1)  # three ticks (virtual)
        runs = await scheduled_runs(app)
        assert len(runs) == 3
        assert {run.args["kind"] for run in runs} == {"hourly"}
        (info,) = await app.schedule_info()
        assert info["last_run"] == runs[0].id and info["ticks_started"] == 3


@pytest.mark.virtual_time
async def test_a_ticks_run_has_an_id_derived_from_the_tick(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(ticking_app(make_app)) as app:
        await asyncio.sleep(61)
        (info,) = await app.schedule_info()
        (run,) = await scheduled_runs(app)
        assert run.id == app.schedules["reports"].run_id(info["last_tick"])


@pytest.mark.virtual_time
async def test_a_restart_within_a_tick_does_not_start_it_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    for _ in range(3):  # three processes, one after the other, in the same minute
        async with started(ticking_app(lambda: taskcast.App(url, grace=0.0))) as app:
            await asyncio.sleep(20)
    async with started(ticking_app(lambda: taskcast.App(url, grace=0.0))) as app:
        ticks = {run.id for run in await scheduled_runs(app)}
        (info,) = await app.schedule_info()
    assert len(ticks) == 1 and info["last_run"] in ticks


@pytest.mark.virtual_time
@pytest.mark.parametrize(("catch_up", "expected"), [("latest", 1), ("none", 0)])
async def test_ticks_missed_while_down_are_caught_up_once_or_skipped(
    tmp_path: Path, catch_up: str, expected: int
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    def make() -> taskcast.App:
        return taskcast.App(url, grace=0.0)

    async with started(ticking_app(make, catch_up=catch_up)) as app:
        await asyncio.sleep(61)
        before = len(await scheduled_runs(app))
    await asyncio.sleep(5 * 60)  # five ticks pass while no process is up
    async with started(ticking_app(make, catch_up=catch_up)) as app:
        await asyncio.sleep(1)
        after = len(await scheduled_runs(app))
        (info,) = await app.schedule_info()
    assert after - before == expected
    assert info["ticks_skipped"] == 5 - expected


@pytest.mark.virtual_time
async def test_a_paused_schedule_starts_nothing_until_resumed(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(ticking_app(make_app)) as app:
        await app.pause_schedule("reports")
        await asyncio.sleep(60 * 3)
        assert await scheduled_runs(app) == []
        (info,) = await app.schedule_info()
        assert info["paused"] is True and info["next_tick"] is None
        await app.resume_schedule("reports")
        await asyncio.sleep(60)
        assert len(await scheduled_runs(app)) == 1


async def test_a_disabled_schedule_is_paused_and_trigger_still_starts_a_run(
    make_app: Callable[..., taskcast.App],
) -> None:
    async with started(ticking_app(make_app, enabled=False)) as app:
        (info,) = await app.schedule_info()
        assert info["paused"] is True
        run = await app.trigger_schedule("reports")
        assert (await app.wait(run.id, timeout=5)).result == "hourly"
        (info,) = await app.schedule_info()
        assert info["last_run"] == run.id


async def test_an_unknown_schedule_is_refused(make_app: Callable[..., taskcast.App]) -> None:
    async with started(ticking_app(make_app)) as app:
        with pytest.raises(taskcast.UnknownSchedule, match="registered schedules: reports"):
            await app.pause_schedule("nightly")


async def test_a_schedule_of_an_unknown_task_is_refused_at_start(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app()
    app.schedule("reports", "report", every=60)
    with pytest.raises(taskcast.UnknownTask, match="report"):
        await app.start()
    assert not app.started


async def test_a_schedule_with_bad_args_is_refused_at_start(
    make_app: Callable[..., taskcast.App],
) -> None:
    app = make_app()

    @app.task
    async def report(kind: str) -> str:
        return kind

    app.schedule("reports", "report", {"knd": "x"}, every=60)
    with pytest.raises(taskcast.InvalidArguments, match="kind"):
        await app.start()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "is not a cron expression"),
        ({"cron": "* * *"}, "is not a cron expression"),
        ({"every": 0.5}, "every must be a number of seconds >= 1"),
        ({"every": 60, "cron": "* * * * *"}, "give cron='...' or every=seconds"),
        ({}, "give cron='...' or every=seconds"),
        ({"every": 60, "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"every": 60, "catch_up": "all"}, "catch_up must be 'latest' or 'none'"),
        ({"every": 60, "name": "bad name"}, "schedule name must be"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(
    options: dict[str, object], message: str
) -> None:
    app = taskcast.App()
    name = options.pop("name", "reports")
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        app.schedule(name, "report", **options)  # type: ignore[arg-type]


def test_cron_ticks_follow_daylight_saving_time_in_the_schedules_timezone() -> None:
    paris = ZoneInfo("Europe/Paris")
    schedule = Schedule.create("n", "t", cron="30 2 * * *", timezone="Europe/Paris")
    tick = datetime(2024, 3, 30, 12, tzinfo=paris).timestamp()
    ticks = []
    for _ in range(2):
        tick = schedule.next_tick(tick)
        ticks.append(datetime.fromtimestamp(tick, paris).isoformat())
    # 02:30 does not exist on 31 March 2024 (clocks jump from 02:00 to 03:00)
    assert ticks == ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"]
    tick = datetime(2024, 10, 26, 12, tzinfo=paris).timestamp()
    autumn = schedule.next_tick(tick)
    # 02:30 happens twice on 27 October 2024: the schedule fires once
    assert schedule.next_tick(autumn) - autumn == 25 * 3600


def test_every_ticks_on_multiples_of_the_period_whoever_computes_them() -> None:
    schedule = Schedule.create("n", "t", every=3600)
    assert schedule.next_tick(7200.5) == 10800.0
    assert schedule.latest_tick(10799.0) == 7200.0
    assert schedule.run_id(10800.0) == Schedule.create("n", "t", every=3600).run_id(10800.0)
