"""anyio's pytest plugin runs every test inside its own runner task.

That task (``TestRunner._run_tests_and_fixtures``) is anyio's, started by its
plugin with no frame of the test on the stack: the guard leaves it alone. A task
the test starts and abandons is the test's.
"""

import asyncio

import anyio
import anyio.lowlevel
import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def ready() -> object:
    return object()


async def beat(beats: list[int]) -> None:
    while True:
        beats.append(1)
        await anyio.sleep(3600)


async def test_buggy(ready: object) -> None:
    beats: list[int] = []
    asyncio.get_running_loop().create_task(beat(beats))  # BUG: nobody owns it
    await anyio.lowlevel.checkpoint()
    assert beats == [1]


async def test_fixed(ready: object) -> None:
    beats: list[int] = []
    async with anyio.create_task_group() as group:
        group.start_soon(beat, beats)
        await anyio.lowlevel.checkpoint()
        assert beats == [1]
        group.cancel_scope.cancel()
