"""An App for ``taskcast serve --app tests.workflows.workflow_app:app`` in tests."""

import taskcast

app = taskcast.App()


@app.task(name="wf.square")
async def square(i: int) -> int:
    """Return i * i."""
    return i * i


@app.task(name="wf.fan")
async def fan(ctx: taskcast.Context, n: int = 3) -> list[int]:
    """Square 0..n-1 as child runs."""
    return await ctx.map("wf.square", [{"i": i} for i in range(n)])
