"""Finding and counting runs in the whole store: by id prefix, task and state together, page by
page; counts by task and state that follow every change."""

from __future__ import annotations

import pytest

import taskcast
from taskcast.states import RunState


async def test_runs_are_found_by_id_prefix_task_and_state_together_page_by_page(
    app: taskcast.App,
) -> None:
    @app.task(name="ok")
    async def ok() -> None: ...

    @app.task(name="bad")
    async def bad() -> None:
        raise RuntimeError("bad")

    chosen = ["job-a1", "job-a2", "job-a3", "job-b1", "jobs", "other-a1"]
    for run_id in chosen:
        await app.wait((await app.submit_with("ok", id=run_id)).id, timeout=10)
    failed = await app.submit_with("bad", id="job-a4")
    await app.wait(failed.id, timeout=10)

    def ids(runs: list[taskcast.Run]) -> list[str]:
        return [run.id for run in runs]

    assert ids(await app.runs(prefix="job-a")) == ["job-a4", "job-a3", "job-a2", "job-a1"]
    assert ids(await app.runs(prefix="job-a", task="ok")) == ["job-a3", "job-a2", "job-a1"]
    assert ids(await app.runs(prefix="job-a", state="failed")) == ["job-a4"]
    assert ids(await app.runs(prefix="job-a", task="bad", state="completed")) == []
    first = await app.runs(prefix="job", state=RunState.COMPLETED, limit=2)
    assert ids(first) == ["jobs", "job-b1"]
    rest = await app.runs(prefix="job", state=RunState.COMPLETED, limit=3, before=first[-1].id)
    assert ids(rest) == ["job-a3", "job-a2", "job-a1"]
    assert await app.runs(prefix="nothing") == []


async def test_a_prefix_that_no_id_can_start_with_is_refused(app: taskcast.App) -> None:
    with pytest.raises(taskcast.InvalidRequest, match="prefix must be the start of a run id"):
        await app.runs(prefix="a b")


async def test_counts_by_task_and_state_follow_the_runs_and_prune(app: taskcast.App) -> None:
    @app.task(name="ok")
    async def ok() -> None: ...

    @app.task(name="bad")
    async def bad() -> None:
        raise RuntimeError("bad")

    runs = [await app.submit("ok") for _ in range(3)] + [await app.submit("bad")]
    for run in runs:
        await app.wait(run.id, timeout=10)
    assert await app.count_runs() == {("ok", RunState.COMPLETED): 3, ("bad", RunState.FAILED): 1}
    assert await app.prune(older_than=0) == 4
    assert await app.count_runs() == {}
