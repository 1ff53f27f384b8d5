"""A file opened in a worker thread (as aiofiles does) and never closed.

The report names the line that sent ``open`` to the thread, not the fixture's
earlier ``open`` of the same path in the test's own thread.
"""

import asyncio
from pathlib import Path

import pytest


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "report.txt"
    with open(path, "w") as out:  # the same path, opened first in the test's thread
        out.write("done")
    return path


async def test_buggy(report: Path) -> None:
    handle = await asyncio.to_thread(open, report)  # BUG: never closed
    assert await asyncio.to_thread(handle.read) == "done"


async def test_fixed(report: Path) -> None:
    handle = await asyncio.to_thread(open, report)
    try:
        assert await asyncio.to_thread(handle.read) == "done"
    finally:
        await asyncio.to_thread(handle.close)
