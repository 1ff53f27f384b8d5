"""A thread runs its own event loop, whose coroutine starts a task it never awaits.

``asyncio.run`` in that thread cancels the task silently when it returns. The
leak guard reports it with the line that created it, although coroutine
origins are tracked per thread.
"""

import asyncio
import threading


async def flush(log: list[str]) -> None:
    await asyncio.sleep(3600)
    log.append("flushed")


async def serve_buggy(log: list[str]) -> None:
    asyncio.get_running_loop().create_task(flush(log))  # BUG: nobody owns it
    await asyncio.sleep(0)


async def serve_fixed(log: list[str]) -> None:
    async with asyncio.TaskGroup() as group:
        task = group.create_task(flush(log))
        await asyncio.sleep(0)
        task.cancel()


def run_in_thread(main: object) -> None:
    thread = threading.Thread(target=asyncio.run, args=(main,))
    thread.start()
    thread.join()


def test_buggy() -> None:
    log: list[str] = []
    run_in_thread(serve_buggy(log))
    assert log == []


def test_fixed() -> None:
    log: list[str] = []
    run_in_thread(serve_fixed(log))
    assert log == []
