"""An app for ``taskcast serve --app tests.dashboard.sample_app:app`` (the demo tasks join it)."""

import asyncio
from typing import Any

import taskcast

app = taskcast.App()


@app.task(name="sample.parent")
async def parent(ctx: taskcast.Context, children: list[dict[str, Any]]) -> int:
    """Announce ``children`` (``{"run_id", "task"}`` each) as ``child`` events, as a workflow's
    parent run does, and return how many."""
    for child in children:
        await ctx.emit("child", child)
    return len(children)


@app.task(name="sample.ticker")
async def ticker(ctx: taskcast.Context, rate: float = 100.0, count: int = 500) -> int:
    """Emit ``count`` progress events at ``rate`` per second, on a schedule that does not drift
    (a late tick is followed by a shorter wait), and return ``count``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index in range(1, count + 1):
        await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
        await ctx.progress(index, count, message=f"tick {index}")
    return count
