"""Cleanup that awaits in a finally-block without protection.

Cancelled while releasing, the connection is never returned to the pool.
cancel_at_each_await names the await where the cancellation broke it.
"""

import asyncio

from taskcast.testing import cancel_at_each_await


class Pool:
    def __init__(self) -> None:
        self.free = 1

    async def acquire(self) -> None:
        await asyncio.sleep(0)  # a round-trip to the database
        self.free -= 1

    async def release_unsafe(self) -> None:
        await asyncio.sleep(0)  # BUG: cancelled here, the slot is lost
        self.free += 1

    async def release(self) -> None:
        self.free += 1  # give the slot back before anything can be cancelled
        await asyncio.sleep(0)


async def test_buggy() -> None:
    pool = Pool()

    async def query() -> None:
        await pool.acquire()
        try:
            await asyncio.sleep(0)
        finally:
            await pool.release_unsafe()

    def pool_is_whole() -> None:
        assert pool.free == 1, f"{1 - pool.free} connection(s) lost"

    await cancel_at_each_await(query, pool_is_whole)


async def test_fixed() -> None:
    pool = Pool()

    async def query() -> None:
        await pool.acquire()
        try:
            await asyncio.sleep(0)
        finally:
            await pool.release()

    def pool_is_whole() -> None:
        assert pool.free == 1, f"{1 - pool.free} connection(s) lost"

    report = await cancel_at_each_await(query, pool_is_whole)
    assert report.points == 3
