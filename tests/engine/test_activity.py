"""Activity over time (``App.activity``, the store's ``activity``): the figures behind the
dashboard's charts, the same on every store.

Runs are written into the store with chosen times (of a task no worker runs), so each lands in a
known bucket: the middle of bucket ``k`` of the window is ``at(k)``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import taskcast
from taskcast.ids import new_run_id
from taskcast.states import RunState
from taskcast.stats import Window

STEP = 60.0
BUCKETS = 10


@pytest.fixture
def window() -> Window:
    return Window.ending_at(time.time(), BUCKETS * STEP, STEP)


def middle(window: Window, bucket: float) -> float:
    """The middle of bucket ``bucket`` (negative: before the window)."""
    return window.start + (bucket + 0.5) * STEP


async def write_run(
    app: taskcast.App,
    created: float,
    started: float | None = None,
    ended: tuple[RunState, float] | None = None,
    *,
    task: str = "charted",
) -> str:
    """A run of ``task`` (which nobody runs) created, started and ended at these times."""
    store = app.store
    run = taskcast.Run(new_run_id(), task, {}, created_at=created)
    await store.create_run(run, {"task": task}, fresh_id=True)
    if started is not None:
        await store.transition(
            run.id, RunState.RUNNING, "started", {"attempt": 1}, attempt=1, started_at=started
        )
    if ended is not None:
        state, at = ended
        fields: dict[str, Any] = {"finished_at": at}
        if state is not RunState.COMPLETED:
            fields["error"] = {"type": "Error", "message": "ended"}
        moved = await store.transition(run.id, state, state.value, {}, **fields)
        assert moved is not None
    return run.id


def series(values: dict[int, int]) -> list[int]:
    return [values.get(bucket, 0) for bucket in range(BUCKETS)]


async def test_runs_are_counted_in_the_buckets_of_their_creation_start_and_end(
    app: taskcast.App, window: Window
) -> None:
    at = lambda bucket: middle(window, bucket)  # noqa: E731
    await write_run(app, at(1), at(2), (RunState.COMPLETED, at(4)))
    await write_run(app, at(1), at(1), (RunState.COMPLETED, at(4)))
    await write_run(app, at(2), at(3), (RunState.FAILED, at(5)))
    await write_run(app, at(6), None, (RunState.CANCELLED, at(6)))
    await write_run(app, at(3), at(3), (RunState.TIMED_OUT, at(9)))
    activity = await app.store.activity(window)
    assert activity.created == series({1: 2, 2: 1, 3: 1, 6: 1})
    assert activity.started == series({1: 1, 2: 1, 3: 2})
    assert activity.finished == {
        "completed": series({4: 2}),
        "failed": series({5: 1}),
        "cancelled": series({6: 1}),
        "timed_out": series({9: 1}),
    }


async def test_queued_and_running_are_the_runs_in_that_state_at_the_end_of_each_bucket(
    app: taskcast.App, window: Window
) -> None:
    at = lambda bucket: middle(window, bucket)  # noqa: E731
    # Waited from before the window to bucket 2, ran until bucket 5.
    await write_run(app, at(-3), at(2), (RunState.COMPLETED, at(5)))
    # Cancelled while waiting, in bucket 4.
    await write_run(app, at(1), None, (RunState.CANCELLED, at(4)))
    # Still waiting, and still running: counted up to the present (the last bucket).
    await write_run(app, at(7))
    await write_run(app, at(6), at(8))
    activity = await app.store.activity(window)
    assert activity.queued == [1, 2, 1, 1, 0, 0, 1, 2, 1, 1]
    assert activity.running == [0, 0, 1, 1, 1, 0, 0, 0, 1, 1]


async def test_runs_that_ended_before_the_window_are_not_counted(
    app: taskcast.App, window: Window
) -> None:
    at = lambda bucket: middle(window, bucket)  # noqa: E731
    await write_run(app, at(-9), at(-8), (RunState.COMPLETED, at(-2)))
    await write_run(app, at(-9), None, (RunState.CANCELLED, at(-1)))
    activity = await app.store.activity(window)
    every = [
        activity.created,
        activity.started,
        activity.queued,
        activity.running,
        *activity.finished.values(),
    ]
    assert every == [[0] * BUCKETS] * len(every)
    assert activity.durations == {}


async def test_durations_per_task_are_the_nearest_rank_p50_and_p95_and_the_longest(
    app: taskcast.App, window: Window
) -> None:
    start = middle(window, 1)
    for seconds in range(20, 0, -1):  # 1 to 20 seconds, written longest first
        await write_run(app, start, start, (RunState.COMPLETED, start + seconds), task="slow")
    await write_run(app, start, start, (RunState.FAILED, start + 0.5), task="quick")
    await write_run(app, start, None, (RunState.CANCELLED, start + 9), task="quick")  # never ran
    activity = await app.store.activity(window)
    slow, quick = activity.durations["slow"], activity.durations["quick"]
    assert (slow.runs, slow.p50, slow.p95, slow.max) == (20, 10.0, 19.0, 20.0)
    assert (quick.runs, quick.p50, quick.p95, quick.max) == (1, 0.5, 0.5, 0.5)


async def test_the_app_answers_for_the_window_ending_now(app: taskcast.App) -> None:
    @app.task(name="quick")
    async def quick() -> None: ...

    run = await app.wait((await app.submit("quick")).id, timeout=10)
    activity = await app.activity(window=600, step=60)
    assert activity.window.count == 10 and activity.window.step == 60
    assert activity.window.start % 60 == 0
    assert activity.window.start <= run.finished_at < activity.window.end  # type: ignore[operator]
    # (Created, started and ended a moment ago: in the last bucket, or the one before it.)
    assert sum(activity.created) == sum(activity.started) == 1
    assert sum(activity.finished["completed"]) == 1
    assert activity.queued[-1] == activity.running[-1] == 0
    assert activity.durations["quick"].runs == 1


@pytest.mark.parametrize(
    ("window", "step", "field"),
    [
        (0, 60, "window"),
        (float("nan"), 60, "window"),
        (31 * 86400, 3600, "window"),
        (3600, 0.5, "step"),
        (3600, 7200, "step"),
        (86400, 1, "step"),  # 86,400 buckets
    ],
)
async def test_a_window_out_of_bounds_is_refused_naming_the_field(
    app: taskcast.App, window: float, step: float, field: str
) -> None:
    with pytest.raises(taskcast.InvalidRequest, match=f"^{field}: ") as refused:
        await app.activity(window=window, step=step)
    assert refused.value.details["param"] == field
