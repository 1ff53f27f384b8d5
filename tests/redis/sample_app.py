"""Tasks for the distributed tests; served by `taskcast serve --no-worker` and `taskcast worker`
processes with ``--app tests.redis.sample_app:app`` (the store comes from ``--store``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import taskcast

app = taskcast.App("memory://", grace=0.0, shutdown_timeout=2.0)


@app.task(name="steps", retries=2)
async def steps(ctx: taskcast.Context, n: int = 10, delay: float = 0.05) -> dict[str, Any]:
    """Say which worker runs it, then emit ``n`` progress events ``delay`` seconds apart."""
    await ctx.emit("worker", {"pid": os.getpid(), "attempt": ctx.attempt})
    for step in range(n):
        await asyncio.sleep(delay)
        await ctx.progress(step + 1, n)
    return {"pid": os.getpid()}


@app.task(name="hold", retries=1)
async def hold(ctx: taskcast.Context) -> dict[str, Any]:
    """Say which worker runs it, then wait for the signal ``release`` (for ever if need be)."""
    await ctx.emit("worker", {"pid": os.getpid(), "attempt": ctx.attempt})
    await ctx.signal("release")
    return {"pid": os.getpid(), "attempt": ctx.attempt}
