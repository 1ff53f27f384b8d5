"""The ``demo.*`` tasks: what a newcomer submits to watch taskcast work (README).

* ``demo.count(n=10, delay=0.5)`` emits ``progress`` n times, one every ``delay`` seconds, and
  returns ``{"counted": n}``. It may be retried twice, so a run interrupted by a restart resumes.
* ``demo.fail(message="failed on purpose")`` raises ``DemoFailure(message)``.
* ``demo.wait()`` waits for the signal ``continue`` and returns its data.
"""

import asyncio
from typing import Annotated, Any

from pydantic import Field

from ..app import App
from ..runs.context import Context

MAX_COUNT = 100_000
MAX_DELAY = 3600.0


class DemoFailure(Exception):
    """What ``demo.fail`` raises: a failure on purpose, to see how one looks."""


def register_demo_tasks(app: App) -> None:
    """Register ``demo.count``, ``demo.fail`` and ``demo.wait`` on ``app``.

    Raises ``ValueError`` if ``app`` already has a task with one of those names.
    """

    @app.task(name="demo.count", retries=2, backoff=0.5)
    async def count(
        ctx: Context,
        n: Annotated[int, Field(ge=0, le=MAX_COUNT)] = 10,
        delay: Annotated[float, Field(ge=0, le=MAX_DELAY)] = 0.5,
    ) -> dict[str, int]:
        """Count to n, emitting a progress event every `delay` seconds; returns {"counted": n}."""
        for current in range(1, n + 1):
            await asyncio.sleep(delay)
            await ctx.progress(current, n, message=f"counted {current} of {n}")
        return {"counted": n}

    @app.task(name="demo.fail")
    async def fail(message: str = "failed on purpose") -> None:
        """Fail at once with `message`, to show what a failed run looks like."""
        raise DemoFailure(message)

    @app.task(name="demo.wait")
    async def wait(ctx: Context) -> Any:
        """Wait for the signal `continue` and return its data."""
        return await ctx.signal("continue")
