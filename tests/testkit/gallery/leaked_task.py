"""A background task started by the test and never awaited or cancelled.

asyncio.Runner cancels it silently when the loop closes; the leak guard fails
the test and points at the create_task line.
"""

import asyncio
import contextlib


async def heartbeat(beats: list[int]) -> None:
    while True:
        beats.append(1)
        await asyncio.sleep(3600)


async def test_buggy() -> None:
    beats: list[int] = []
    asyncio.create_task(heartbeat(beats))  # BUG: nobody owns this task  # noqa: RUF006
    await asyncio.sleep(0)
    assert beats == [1]


async def test_fixed() -> None:
    beats: list[int] = []
    task = asyncio.create_task(heartbeat(beats))
    await asyncio.sleep(0)
    assert beats == [1]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
