"""An App for ``taskcast serve --app tests.server.door_app:app``: tasks that hand back what they
are given, to check that what the door accepts comes back unchanged, and one that writes past
every door."""

from typing import Any

import taskcast

app = taskcast.App()


@app.task(name="door.keep")
async def keep(ctx: taskcast.Context, value: Any = None) -> Any:
    """Emit `value` as a `kept` event, then return it."""
    await ctx.emit("kept", value)
    return value


@app.task(name="door.emit")
async def emit(ctx: taskcast.Context, kind: str) -> str:
    """Emit an event of type `kind` (the door refuses what is not a name: the run fails)."""
    await ctx.emit(kind)
    return kind


@app.task(name="door.listen")
async def listen(ctx: taskcast.Context, name: str) -> Any:
    """Wait for the signal `name` and return its data."""
    return await ctx.signal(name, timeout=60)


@app.task(name="door.forge")
async def forge(ctx: taskcast.Context, kind: str) -> str:
    """Write an event of type `kind` straight to the store, past every door (as a plugin, or a
    store an older version wrote, could): the event stream must still send it as one event."""
    await app.store.append(ctx.run_id, kind, None, "null")
    return "forged"
