"""Tasks for the distributed tests; served by `taskcast serve --no-worker` and `taskcast worker`
processes with ``--app tests.redis.sample_app:app`` (the store comes from ``--store``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import taskcast

from ..durable_app import register

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


# -- workflows across workers (tests/redis/test_workflows_across_workers.py) ----------------


@app.task(name="leaf")
async def leaf(ctx: taskcast.Context, i: int = 0, delay: float = 0.0) -> dict[str, Any]:
    """Say which worker runs it (in its result), after ``delay`` seconds."""
    if delay:
        await asyncio.sleep(delay)
    return {"i": i, "pid": os.getpid()}


@app.task(name="fan")
async def fan(ctx: taskcast.Context, n: int, delay: float = 0.0) -> list[int]:
    """Map ``n`` leaves; return the pids of the workers that ran them, in order."""
    results = await ctx.map("leaf", [{"i": i, "delay": delay} for i in range(n)])
    return [result["pid"] for result in results]


async def _tree(ctx: taskcast.Context, task: str, depth: int) -> int:
    if depth == 0:
        return 1
    counts = await ctx.map(task, [{"depth": depth - 1}] * 2)
    single = await (await ctx.spawn(task, depth=depth - 1))
    return int(sum(counts)) + int(single)


@app.task(name="tree")
async def tree(ctx: taskcast.Context, depth: int) -> int:
    """A tree of children of its own task: 3**depth leaves."""
    return await _tree(ctx, "tree", depth)


@app.task(name="limited_tree", concurrency=1)
async def limited_tree(ctx: taskcast.Context, depth: int) -> int:
    """``tree`` with one run executing at once in the whole deployment."""
    return await _tree(ctx, "limited_tree", depth)


@app.task(name="two_at_once", concurrency=2)
async def two_at_once(ctx: taskcast.Context, delay: float = 0.2) -> int:
    """Two runs at once in the whole deployment, each ``delay`` seconds long."""
    await asyncio.sleep(delay)
    return os.getpid()


@app.task(name="keeps_children", retries=1)
async def keeps_children(ctx: taskcast.Context) -> list[Any]:
    """A completed child, then a ``hold`` child it waits for (the worker may die meanwhile)."""
    await ctx.emit("worker", {"pid": os.getpid(), "attempt": ctx.attempt})
    first = await (await ctx.spawn("leaf", i=0))
    second = await ctx.spawn("hold")
    await ctx.emit("waiting", {"child": second.run_id, "attempt": ctx.attempt})
    return [first, await second]


register(app)  # ``durable.plan``, for the durable steps tests
