"""Tasks and a schedule for the time-and-order tests across workers
(``taskcast worker --app tests.redis.timeorder_app:app``)."""

from __future__ import annotations

import asyncio
import os

import taskcast

app = taskcast.App("memory://", grace=0.0, shutdown_timeout=2.0)


@app.task(name="noop")
async def noop() -> int:
    """Say which worker ran it."""
    return os.getpid()


@app.task(name="limited", rate_limit="5/s")
async def limited() -> int:
    """At most 5 starts a second, in the whole deployment."""
    return os.getpid()


@app.task(name="keyed", concurrency=1, concurrency_key="repo")
async def keyed(repo: str, delay: float = 0.1) -> int:
    """One at a time per repository, in the whole deployment."""
    await asyncio.sleep(delay)
    return os.getpid()


app.schedule("every-second", "noop", every=1)
