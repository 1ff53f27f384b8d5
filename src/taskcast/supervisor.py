"""The owner of every asyncio task taskcast starts: no fire-and-forget ``create_task``.

Like a ``TaskGroup`` whose children never cancel each other: a run that fails must not take the
others down, so failures are recorded by the run itself and a child that still raises is logged
here. ``close()`` cancels what is left and waits for it, bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger("taskcast")

_T = TypeVar("_T")


class Supervisor:
    """Starts tasks, keeps a reference to each until it ends, and cancels the rest on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    @property
    def active_count(self) -> int:
        """Tasks started and not yet done."""
        return len(self._tasks)

    def spawn(self, coroutine: Coroutine[Any, Any, _T], *, name: str) -> asyncio.Task[_T]:
        """Start ``coroutine`` as a task owned by this supervisor."""
        if self.closed:
            coroutine.close()
            raise RuntimeError("the supervisor is closed")
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def start(self, coroutine: Coroutine[Any, Any, _T], *, name: str) -> asyncio.Task[_T]:
        """Like ``spawn``, for a coroutine that ends by handing its task back with ``done``
        and that lets no exception out (``spawn`` logs one): the task needs no done callback,
        which spares the loop a callback per task (the engine starts one per run)."""
        if self.closed:
            coroutine.close()
            raise RuntimeError("the supervisor is closed")
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        return task

    def done(self, task: asyncio.Task[Any] | None) -> None:
        """``task``, started with ``start``, is ending: forget it."""
        self._tasks.discard(task)

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s crashed", task.get_name(), exc_info=task.exception())

    async def close(self, timeout: float | None = None) -> list[asyncio.Task[Any]]:
        """Cancel every task still running and wait up to ``timeout`` seconds for them.

        Returns the tasks that did not end in time (they ignore cancellation); an empty list
        means nothing of ours is left on the loop.
        """
        self.closed = True
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return [task for task in pending if not task.done()]
