"""Hang reports: a hung test is cancelled and the report shows what each task awaited."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from gallery_runner import Snippet

from taskcast.testing import HangWatchdog


def test_gallery_hanging_timeout_is_cancelled_with_a_report(
    snippet: Callable[[str], Snippet],
) -> None:
    example = snippet("hanging_timeout")
    result = example.run()
    result.assert_outcomes(failed=1, passed=1)
    output = result.stdout.str()
    assert "taskcast hang: the test hung (still running after 0.5s" in output
    assert "running test_buggy() is awaiting:" in output
    assert f"{example.site()} in fetch_with_retry" in output
    assert "They were cancelled so their cleanup could run." in output


def test_deadlock_under_virtual_time_is_reported_at_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        cleaned = []

        @pytest.mark.virtual_time
        @pytest.mark.hang_timeout(60)
        async def test_waits_for_itself():
            lock = asyncio.Lock()
            async with lock:
                try:
                    async with lock:  # never: the lock is ours already
                        pass
                finally:
                    cleaned.append(True)

        def test_cleanup_ran():
            assert cleaned == [True]
        """
    )
    started = time.monotonic()
    result = pytester.runpytest("-v")
    assert time.monotonic() - started < 30  # far below the 60 s budget
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["*deadlock: nothing can ever wake it*", "*test_waits_for_itself() is awaiting:*"]
    )


def test_task_that_swallows_cancellation_is_abandoned_after_the_grace(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.allow_leaks(reason="the stubborn task outlives the test on purpose")
        @pytest.mark.hang_timeout(0.2, grace=0.2)
        async def test_stubborn():
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    continue
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ignored cancellation for 0.2s; the loop was stopped*"])


def test_ini_option_sets_a_default_budget(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def test_forever():
            await asyncio.Event().wait()
        """
    )
    result = pytester.runpytest("-o", "taskcast_hang_timeout=0.2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*still running after 0.2s*"])


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan")])
def test_budget_must_be_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        HangWatchdog(seconds)


def test_report_follows_awaits_into_async_generators(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        async def events(stop):
            while True:
                await stop.wait()  # the line the report must reach
                yield 1

        @pytest.mark.hang_timeout(0.2)
        async def test_reads_events():
            stop = asyncio.Event()
            assert [e async for e in events(stop)]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*in events*", "*await stop.wait()  # the line the report*"])


def test_a_task_that_swallows_every_exception_is_kept_alive_and_pytest_exits(
    snippet: Callable[[str], Snippet],
) -> None:
    # A real process: the bug only shows when the interpreter frees the task (it never exits).
    example = snippet("swallowed_cancellation")
    result = example.pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*ignored cancellation for 0.2s; the loop was stopped. These are kept alive*",
            "*running test_buggy() is awaiting:*",
            f"*{example.filename}:*in poll*",
        ]
    )


def test_an_executor_job_that_never_returns_is_named_and_pytest_exits(
    pytester: pytest.Pytester,
) -> None:
    # A real process: Python joins every thread-pool worker at exit.
    pytester.makepyfile(
        """
        import asyncio
        import threading

        import pytest

        never = threading.Event()

        @pytest.mark.hang_timeout(0.5)
        async def test_leaves_a_blocking_job():
            asyncio.get_running_loop().run_in_executor(None, never.wait)  # the job

        def test_next():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_blocking_job*",
            "*taskcast hang: the test hung*",
            "*1 executor job(s) were still running*",
            "*executor job Event.wait(), submitted at:*",
            "*:10 in test_leaves_a_blocking_job*",
        ]
    )
