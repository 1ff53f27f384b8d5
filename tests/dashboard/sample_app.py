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
async def ticker(
    ctx: taskcast.Context, rate: float = 100.0, count: int = 500, until_stopped: bool = False
) -> int:
    """Emit ``count`` progress events at ``rate`` per second, on a schedule that does not drift
    (a late tick is followed by a shorter wait), and return how many it emitted. With
    ``until_stopped`` it goes on ticking past ``count`` until it gets the signal ``stop``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.ensure_future(ctx.signal("stop")) if until_stopped else None
    start = loop.time()
    index = 0
    try:
        while index < count or (stop is not None and not stop.done()):
            index += 1
            await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
            await ctx.progress(index, max(count, index), message=f"tick {index}")
    finally:
        if stop is not None:
            stop.cancel()
    return index


@app.task(name="sample.step")
async def step(i: int = 0, seconds: float = 0.0, fail: bool = False) -> int:
    """Wait ``seconds``, then fail if asked, else return ``i``."""
    await asyncio.sleep(seconds)
    if fail:
        raise RuntimeError(f"step {i} failed on purpose")
    return i


@app.task(name="sample.fanout")
async def fanout(
    ctx: taskcast.Context,
    n: int = 10,
    seconds: float = 0.0,
    fail_every: int = 0,
    concurrency: int | None = None,
) -> int:
    """Run ``n`` ``sample.step`` children side by side (``ctx.map``, isolated: a failing child
    does not stop the others); child ``i`` waits ``seconds * (1 + i % 3)`` and fails when
    ``fail_every`` divides ``i + 1``. Returns how many completed."""
    items = [
        {
            "i": i,
            "seconds": seconds * (1 + i % 3),
            "fail": bool(fail_every and (i + 1) % fail_every == 0),
        }
        for i in range(n)
    ]
    results = await ctx.map("sample.step", items, isolate=True, concurrency=concurrency)
    return sum(not isinstance(result, taskcast.TaskFailed) for result in results)
