"""A timeout that hangs: each attempt times out, and the retry loop never gives up.

The hang watchdog cancels the test cooperatively and reports what every task
was awaiting; the fixed version bounds its retries.
"""

import asyncio
from collections.abc import Awaitable, Callable

import pytest


async def fetch_with_retry(fetch: Callable[[], Awaitable[None]]) -> None:
    while True:
        try:
            return await asyncio.wait_for(fetch(), timeout=1)  # BUG: retried forever
        except TimeoutError:
            continue


async def fetch_with_bounded_retry(fetch: Callable[[], Awaitable[None]], attempts: int) -> None:
    for _ in range(attempts - 1):
        try:
            return await asyncio.wait_for(fetch(), timeout=1)
        except TimeoutError:
            continue
    return await asyncio.wait_for(fetch(), timeout=1)


@pytest.mark.hang_timeout(0.5)
@pytest.mark.virtual_time
async def test_buggy() -> None:
    never = asyncio.Event()
    await fetch_with_retry(never.wait)


@pytest.mark.hang_timeout(0.5)
@pytest.mark.virtual_time
async def test_fixed() -> None:
    never = asyncio.Event()
    with pytest.raises(TimeoutError):
        await fetch_with_bounded_retry(never.wait, attempts=3)
