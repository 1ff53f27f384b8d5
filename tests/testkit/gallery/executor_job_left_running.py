"""A blocking call sent to a thread and given up on by a timeout.

``wait_for`` stops waiting, but a thread cannot be cancelled: the job still
blocks in ``inbox.get`` after the test, and the event loop's teardown waits
for it in silence. The leak guard reports the job, where it was submitted and
where it is now; the fix gives the blocking call its own timeout.
"""

import asyncio
import queue

import pytest


async def test_buggy() -> None:
    inbox: queue.Queue[str] = queue.Queue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.to_thread(inbox.get, timeout=0.5), 0.05)  # BUG


async def test_fixed() -> None:
    inbox: queue.Queue[str] = queue.Queue()
    with pytest.raises(queue.Empty):
        await asyncio.to_thread(inbox.get, timeout=0.05)  # the thread stops by itself
