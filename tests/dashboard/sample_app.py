"""An app for ``taskcast serve --app tests.dashboard.sample_app:app`` (the demo tasks join it)."""

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
