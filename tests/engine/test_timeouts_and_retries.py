"""Timeouts end in `timed_out`; failures retry with backoff, each attempt announced."""

from __future__ import annotations

import asyncio

import pytest

import taskcast
from taskcast.tasks import RetryPolicy

from .conftest import collect, types, wait_for_event


async def test_a_run_that_outlives_its_task_timeout_ends_timed_out(app: taskcast.App) -> None:
    cleaned = asyncio.Event()

    @app.task(name="slow", timeout=0.05)
    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    run = await app.wait((await app.submit("slow")).id, timeout=5)
    assert run.state is taskcast.RunState.TIMED_OUT
    assert cleaned.is_set()
    last = (await collect(app, run.id))[-1]
    assert last.type == "timed_out" and last.data["timeout"] == 0.05


async def test_a_per_run_timeout_overrides_the_task_timeout(app: taskcast.App) -> None:
    @app.task(name="slow", timeout=3600)
    async def slow() -> None:
        await asyncio.Event().wait()

    run = await app.submit_with("slow", {}, timeout=0.05)
    assert (await app.wait(run.id, timeout=5)).state is taskcast.RunState.TIMED_OUT


async def test_a_task_can_fall_back_when_its_own_inner_timeout_fires(app: taskcast.App) -> None:
    @app.task(name="fallback", timeout=3600)
    async def fallback(ctx: taskcast.Context) -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()
        except TimeoutError:
            return "cached answer"
        return "fresh answer"

    run = await app.wait((await app.submit("fallback")).id, timeout=5)
    assert run.state is taskcast.RunState.COMPLETED and run.result == "cached answer"


async def test_the_context_exposes_the_deadline(app: taskcast.App) -> None:
    @app.task(name="deadline", timeout=60)
    async def deadline(ctx: taskcast.Context) -> list[float | None]:
        left = ctx.time_left()
        return [left, ctx.deadline]

    run = await app.wait((await app.submit("deadline")).id, timeout=5)
    left, at = run.result
    assert 0 < left <= 60 and at is not None

    @app.task(name="no_deadline")
    async def no_deadline(ctx: taskcast.Context) -> float | None:
        return ctx.time_left()

    assert (await app.wait((await app.submit("no_deadline")).id, timeout=5)).result is None


async def test_a_task_that_swallows_its_timeout_still_ends_timed_out(app: taskcast.App) -> None:
    @app.task(name="swallow", timeout=0.02)
    async def swallow() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "pretend all is well"
        return "unreachable"

    run = await app.wait((await app.submit("swallow")).id, timeout=5)
    assert run.state is taskcast.RunState.TIMED_OUT


async def test_a_timeout_is_not_retried(app: taskcast.App) -> None:
    @app.task(name="slow", timeout=0.02, retries=3, backoff=0)
    async def slow() -> None:
        await asyncio.Event().wait()

    run = await app.wait((await app.submit("slow")).id, timeout=5)
    assert run.state is taskcast.RunState.TIMED_OUT and run.attempt == 1


async def test_failures_are_retried_with_each_attempt_announced(app: taskcast.App) -> None:
    attempts: list[int] = []

    @app.task(name="flaky", retries=2, backoff=0.001, jitter=False)
    async def flaky(ctx: taskcast.Context) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"try {ctx.attempt} failed")
        return "third time lucky"

    run = await app.wait((await app.submit("flaky")).id, timeout=5)
    assert run.state is taskcast.RunState.COMPLETED and run.attempt == 3
    assert attempts == [1, 2, 3]
    events = await collect(app, run.id)
    assert types(events) == [
        "queued", "started", "retrying", "started", "retrying", "started", "completed",
    ]  # fmt: skip
    retrying = [e.data for e in events if e.type == "retrying"]
    assert [r["attempt"] for r in retrying] == [2, 3]
    assert [r["delay"] for r in retrying] == [0.001, 0.002]
    assert retrying[0]["error"] == {"type": "ConnectionError", "message": "try 1 failed"}
    assert [e.data["attempt"] for e in events if e.type == "started"] == [1, 2, 3]


async def test_a_run_fails_when_its_attempts_are_used_up(app: taskcast.App) -> None:
    @app.task(name="broken", retries=1, backoff=0)
    async def broken() -> None:
        raise RuntimeError("always")

    run = await app.wait((await app.submit("broken")).id, timeout=5)
    assert run.state is taskcast.RunState.FAILED and run.attempt == 2


async def test_only_the_listed_exceptions_are_retried(app: taskcast.App) -> None:
    @app.task(name="picky", retries=5, backoff=0, retry_on=(ConnectionError,))
    async def picky() -> None:
        raise ValueError("not retryable")

    run = await app.wait((await app.submit("picky")).id, timeout=5)
    assert run.state is taskcast.RunState.FAILED and run.attempt == 1


async def test_max_attempts_at_submit_overrides_the_task_policy(app: taskcast.App) -> None:
    @app.task(name="broken", retries=0, backoff=0)
    async def broken() -> None:
        raise RuntimeError("always")

    run = await app.submit_with("broken", {}, max_attempts=3)
    assert (await app.wait(run.id, timeout=5)).attempt == 3


async def test_cancel_during_retry_backoff_ends_cancelled_at_once(app: taskcast.App) -> None:
    @app.task(name="flaky", retries=3, backoff=3600)
    async def flaky() -> None:
        raise RuntimeError("fails")

    run = await app.submit("flaky")
    await wait_for_event(app, run.id, "retrying")
    assert (await app.get(run.id)).state is taskcast.RunState.QUEUED
    assert await app.cancel(run.id)
    assert (await app.wait(run.id, timeout=5)).state is taskcast.RunState.CANCELLED


def test_backoff_is_exponential_capped_and_jittered_below_the_cap() -> None:
    exact = RetryPolicy(retries=5, backoff=1, backoff_max=5, jitter=False)
    assert [exact.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    jittered = RetryPolicy(retries=5, backoff=1, backoff_max=5)
    for n in range(1, 6):
        assert all(0 <= jittered.delay(n) <= exact.delay(n) for _ in range(50))
    with pytest.raises(ValueError, match="retries must be >= 0"):
        RetryPolicy(retries=-1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"timeout": float("inf")}, "at most 2.592e\\+06 \\(30 days\\), got inf"),
        ({"timeout": float("nan")}, "timeout must be a positive number"),
        ({"timeout": 30 * 86400 + 1}, "timeout must be a positive number"),
        ({"timeout": True}, "timeout must be a number of seconds"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"id": ""}, "id must be a string"),
    ],
)
async def test_bad_submit_options_are_refused(
    app: taskcast.App, options: dict[str, object], message: str
) -> None:
    @app.task(name="t")
    async def t() -> None: ...

    with pytest.raises(taskcast.InvalidRequest, match=message):
        await app.submit_with("t", {}, **options)  # type: ignore[arg-type]
    assert await app.runs() == []


@pytest.mark.parametrize("timeout", [0, -5, float("inf"), float("nan"), 31 * 86400])
def test_a_task_timeout_is_finite_positive_and_at_most_30_days(timeout: float) -> None:
    app = taskcast.App()
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):

        @app.task(timeout=timeout)
        async def t() -> None: ...

    assert "t" not in app.tasks


@pytest.mark.parametrize("timeout", [0, float("inf"), float("nan"), 31 * 86400])
async def test_waiting_for_a_run_takes_only_a_finite_positive_timeout(
    app: taskcast.App, timeout: float
) -> None:
    @app.task(name="t")
    async def t() -> None: ...

    run = await app.submit("t")
    with pytest.raises(taskcast.InvalidRequest, match="timeout must be a positive number"):
        await app.wait(run.id, timeout=timeout)
    assert (await app.wait(run.id, timeout=5)).state is taskcast.RunState.COMPLETED
