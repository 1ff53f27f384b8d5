"""Apps for ``taskcast serve --app tests.server.sample_app:<name>`` in tests."""

import asyncio

import taskcast

app = taskcast.App(max_concurrency=1, max_queue=1)
"""One run at a time and one waiting: the third submit is refused with 429."""


@app.task(name="sample.echo")
async def echo(text: str) -> str:
    """Return `text`."""
    return text


@app.task(name="sample.chatty")
async def chatty(ctx: taskcast.Context, n: int = 1000, size: int = 1000) -> int:
    """Emit n events of about `size` bytes as fast as possible (to fill a slow client's socket)."""
    payload = "x" * size
    for index in range(n):
        await ctx.emit("blob", {"i": index, "payload": payload})
        await asyncio.sleep(0)
    return n


@app.task(name="sample.chatty_then_wait")
async def chatty_then_wait(ctx: taskcast.Context, n: int = 1000, size: int = 1000) -> None:
    """Emit n events of about `size` bytes, then wait until cancelled (a long log, still live)."""
    await chatty(ctx, n, size)
    await asyncio.Event().wait()


@app.task(name="sample.stubborn")
async def stubborn(ctx: taskcast.Context) -> None:
    """Ignore cancellation for ever (a bug in a task): shutdown must not hang on it."""
    await ctx.log("started")
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue
