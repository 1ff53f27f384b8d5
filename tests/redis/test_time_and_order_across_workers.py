"""Time and order over real ``taskcast worker`` processes on one Redis: a tick starts one run
and a due run starts once however many workers race for them; a rate and a key's limit hold
for the whole deployment."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

import taskcast

from .processes import worker
from .timeorder_app import app as sample_app

APP = ("--app", "tests.redis.timeorder_app:app")


@pytest.fixture
async def api(redis_url: str) -> AsyncIterator[taskcast.App]:
    """An API node in this process (submits and watches; runs nothing; fires no schedule)."""
    node = taskcast.App(redis_url, worker=False)
    node.tasks.update(sample_app.tasks)
    async with node:
        yield node


async def lifecycle(app: taskcast.App, run_id: str) -> list[str]:
    return [e.type for e in await app.store.read_events(run_id) if e.type != "progress"]


async def test_two_workers_start_one_run_per_tick(
    tmp_path: Path, redis_url: str, api: taskcast.App
) -> None:
    ticks: list[str] = []
    enough = asyncio.Event()

    def note(events: Sequence[taskcast.Event]) -> None:
        for event in events:
            if event.type == "queued" and "tick" in event.data:
                ticks.append(event.run_id)
                if len(ticks) >= 4:
                    enough.set()

    api.add_listener(note)
    with worker(tmp_path, redis_url, *APP, name="w1"), worker(tmp_path, redis_url, *APP, name="w2"):
        await asyncio.wait_for(enough.wait(), timeout=60)
    assert len(ticks) == len(set(ticks))  # no tick's run was created twice
    schedule = sample_app.schedules["every-second"]
    for run_id in ticks:
        tick = (await api.store.read_events(run_id))[0].data["tick"]
        assert run_id == schedule.run_id(tick)
        assert (await lifecycle(api, run_id)).count("queued") == 1


async def test_delayed_runs_start_once_with_two_workers(
    tmp_path: Path, redis_url: str, api: taskcast.App
) -> None:
    with worker(tmp_path, redis_url, *APP, name="w1"), worker(tmp_path, redis_url, *APP, name="w2"):
        runs = await api.submit_many("noop", [{}] * 40, delay=1.0)
        assert {run.state for run in runs} == {"scheduled"}
        done = [await api.wait(run.id, timeout=60) for run in runs]
    assert {run.state for run in done} == {taskcast.RunState.COMPLETED}
    for run in done:
        assert await lifecycle(api, run.id) == ["scheduled", "queued", "started", "completed"]


async def test_two_workers_never_exceed_a_rate(
    tmp_path: Path, redis_url: str, api: taskcast.App
) -> None:
    with worker(tmp_path, redis_url, *APP, name="w1"), worker(tmp_path, redis_url, *APP, name="w2"):
        runs = [await api.submit("limited") for _ in range(12)]
        done = [await api.wait(run.id, timeout=60) for run in runs]
    starts = sorted(run.started_at or 0 for run in done)
    # Each start has its slot 0.2 s after the one before (one slot for the deployment: two
    # workers limiting apart would start two at nearly the same time); a start may come after
    # its slot (the promoter's wake-up, a busy machine), never before: two never come much
    # closer than the interval.
    assert min(b - a for a, b in itertools.pairwise(starts)) > 0.2 / 2


async def test_two_workers_never_exceed_a_keys_limit(
    tmp_path: Path, redis_url: str, api: taskcast.App
) -> None:
    with worker(tmp_path, redis_url, *APP, name="w1"), worker(tmp_path, redis_url, *APP, name="w2"):
        runs = [await api.submit("keyed", repo=repo) for repo in "abababab"]
        done = [await api.wait(run.id, timeout=60) for run in runs]
    assert {run.state for run in done} == {taskcast.RunState.COMPLETED}
    for repo in "ab":
        mine = sorted((r for r in done if r.args["repo"] == repo), key=lambda r: r.id)
        # in submit order, and never two at once
        assert [r.started_at for r in mine] == sorted(r.started_at for r in mine)
        for before, after in itertools.pairwise(mine):
            assert (after.started_at or 0) >= (before.finished_at or 0)
