"""A task that swallows cancellation (``except BaseException: pass``) hangs the test.

The hang watchdog reports it, cancels it, and after the grace stops the loop.
The task is kept alive (and named in the report), so it is never closed at
garbage collection, where the same ``except`` would swallow ``GeneratorExit``
and spin forever: pytest exits.
"""

import asyncio

import pytest


async def poll(ticks: list[int]) -> None:
    while True:
        try:
            ticks.append(1)
            await asyncio.sleep(0.01)
        except BaseException:  # BUG: swallows CancelledError (and GeneratorExit)
            pass


@pytest.mark.allow_leaks(reason="the stubborn task outlives the test, by design of the bug")
@pytest.mark.hang_timeout(0.3, grace=0.2)
async def test_buggy() -> None:
    ticks: list[int] = []
    await poll(ticks)


async def poll_fixed(ticked: asyncio.Event) -> None:
    while True:
        try:
            ticked.set()
            await asyncio.sleep(0.01)
        except Exception:  # cancellation is a BaseException: it gets through
            pass


@pytest.mark.hang_timeout(5)
async def test_fixed() -> None:
    ticked = asyncio.Event()
    task = asyncio.create_task(poll_fixed(ticked))
    await ticked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
