"""cancel_at_each_await: cancels at each await point and names the one that broke."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from gallery_runner import Snippet

from taskcast.testing import CancellationSafetyError, cancel_at_each_await


def test_gallery_unsafe_cleanup_is_reported_at_its_await_and_the_fix_passes(
    snippet: Callable[[str], Snippet],
) -> None:
    example = snippet("cancel_unsafe_cleanup")
    result = example.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_buggy FAILED*",
            "*::test_fixed PASSED*",
            "*not cancellation-safe: 1 of 3 await points*",
            "*cancelled at await #3: check failed: AssertionError: 1 connection(s) lost*",
            f"*at {example.site()} in release_unsafe*",
        ]
    )


async def test_counts_each_suspension_and_where_it_is() -> None:
    async def three_awaits() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    report = await cancel_at_each_await(three_awaits, lambda: None)
    assert report.points == 3
    lines = [site[1] for site in report.sites if site is not None]
    assert len(lines) == 3
    assert lines == sorted(lines)


async def test_awaiting_something_already_done_is_not_a_point() -> None:
    async def nothing_to_wait_for() -> int:
        async def ready() -> int:
            return 1

        return await ready()

    report = await cancel_at_each_await(nothing_to_wait_for, lambda: None)
    assert report.points == 0


async def test_swallowed_cancellation_is_a_failure() -> None:
    async def swallows() -> None:
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            pass

    with pytest.raises(CancellationSafetyError) as caught:
        await cancel_at_each_await(swallows, lambda: None)
    assert [failure.point for failure in caught.value.failures] == [1]
    assert "swallowed CancelledError" in str(caught.value)


async def test_other_exception_while_cancelled_is_a_failure() -> None:
    async def cleanup_raises() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            raise_if_cancelled()

    def raise_if_cancelled() -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise RuntimeError("cleanup failed")

    with pytest.raises(CancellationSafetyError, match="raised RuntimeError: cleanup failed"):
        await cancel_at_each_await(cleanup_raises, lambda: None)


async def test_async_check_is_awaited_after_each_run() -> None:
    checked: list[int] = []

    async def check() -> None:
        await asyncio.sleep(0)
        checked.append(1)

    async def two_awaits() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    await cancel_at_each_await(two_awaits, check)
    assert checked == [1, 1, 1]  # the uncancelled run, then one per point


async def test_failure_without_cancellation_propagates() -> None:
    async def broken() -> None:
        await asyncio.sleep(0)
        raise KeyError("scenario is wrong")

    with pytest.raises(KeyError, match="scenario is wrong"):
        await cancel_at_each_await(broken, lambda: None)


@pytest.mark.virtual_time
async def test_long_sleeps_are_cheap_under_virtual_time() -> None:
    held: list[str] = []

    async def hold_lock_for_an_hour() -> None:
        lock = asyncio.Lock()
        async with lock:
            held.append("x")
            await asyncio.sleep(3600)
            held.remove("x")

    with pytest.raises(CancellationSafetyError, match="cancelled at await #1"):
        await cancel_at_each_await(hold_lock_for_an_hour, lambda: _assert_empty(held))


def _assert_empty(items: list[str]) -> None:
    assert not items, f"still held: {items}"


async def test_max_points_must_be_positive() -> None:
    async def nothing() -> None:
        pass

    with pytest.raises(ValueError, match="max_points"):
        await cancel_at_each_await(nothing, lambda: None, max_points=0)
