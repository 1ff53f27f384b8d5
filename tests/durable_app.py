"""A durable task for the tests that stop real processes mid-run (``taskcast serve`` and
``taskcast worker``): ``register(app)`` adds ``durable.plan`` to an App."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import taskcast


def _call(counter: str, name: str) -> str:
    """The work of step ``name``: one line in the ``counter`` file per call."""
    with open(counter, "a") as calls:
        calls.write(f"{name}\n")
    return f"{name} done"


def register(app: taskcast.App) -> None:
    """Add ``durable.plan(counter, plan)``: it runs the steps named in the ``plan`` file, in
    order. Two names are not steps: ``hold`` waits for ever in the first attempt (the process
    is stopped there) and ``crash`` raises in the first attempt; later attempts go on."""

    @app.task(name="durable.plan", retries=2, backoff=0.05)
    async def plan(ctx: taskcast.Context, counter: str, plan: str) -> list[str]:
        await ctx.emit("worker", {"pid": os.getpid(), "attempt": ctx.attempt})
        done = []
        names = (await asyncio.to_thread(Path(plan).read_text)).split()
        for name in names:
            if name == "hold":
                if ctx.attempt == 1:
                    await asyncio.Event().wait()
            elif name == "crash":
                if ctx.attempt == 1:
                    raise RuntimeError("crashed after the steps before")
            else:
                done.append(await ctx.step(name, _call, counter, name))
        return done
