"""An async generator read once and never closed.

Its finally-block (releasing the subscription) only runs when asyncio's
finalizer gets to it, in another task, or never. The leak guard flags the
line that started it.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

released: list[str] = []


async def subscribe(topic: str) -> AsyncIterator[str]:
    try:
        while True:
            yield topic
            await asyncio.sleep(0)
    finally:
        released.append(topic)


async def test_buggy() -> None:
    updates = subscribe("runs")
    assert await anext(updates) == "runs"  # BUG: updates is never closed


async def test_fixed() -> None:
    async with contextlib.aclosing(subscribe("runs")) as updates:
        assert await anext(updates) == "runs"
    assert "runs" in released
