"""A worker process started by the test and never stopped.

The process runs on after the test, and nothing warns: asyncio's child
watcher holds it until it exits. The leak guard reports it with the lines
that started it; the fix terminates it and waits for it.
"""

import asyncio
import sys

WORKER = "import time; time.sleep(10)"  # stands in for a worker that runs until stopped


async def start_worker() -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER)


async def test_buggy() -> None:
    worker = await start_worker()  # BUG: never stopped
    assert worker.returncode is None


async def test_fixed() -> None:
    worker = await start_worker()
    try:
        assert worker.returncode is None
    finally:
        worker.terminate()
        await worker.wait()
