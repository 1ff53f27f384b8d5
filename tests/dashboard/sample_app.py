"""An app for ``taskcast serve --app tests.dashboard.sample_app:app`` (the demo tasks join it)."""

import asyncio
import contextlib

import taskcast

app = taskcast.App()


@app.task(name="sample.parent")
async def parent(
    ctx: taskcast.Context, tasks: list[str], args: dict[str, object] | None = None
) -> int:
    """Spawn a child run of each task in ``tasks`` with ``args`` (its log gets a ``child`` event
    each), wait for each (a child's failure does not fail this run), and return how many."""
    for task in tasks:
        child = await ctx.spawn(task, **(args or {}))
        with contextlib.suppress(taskcast.TaskFailed):
            await child
    return len(tasks)


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
