"""Where a suspended coroutine is waiting: its chain of awaits, outermost first.

``Task.get_stack()`` shows only the task's own coroutine. To say *what* a task
is waiting for, we follow ``cr_await`` from coroutine to coroutine down to the
leaf object (a Future, an Event's waiter, a sleep's timer).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any

from .sites import Frame, format_frame, is_library_file


def await_chain(awaitable: Any) -> list[Frame]:
    """Return the frames a suspended coroutine is stopped in, outermost first.

    Accepts a coroutine, a generator-based coroutine or an async generator's
    ``asend`` object. Finished or unstarted coroutines give an empty list.
    """
    frames: list[Frame] = []
    seen: set[int] = set()
    current = awaitable
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        frame = frame or getattr(current, "ag_frame", None)
        if frame is not None:
            frames.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        nxt = getattr(current, "cr_await", None)
        if nxt is None:
            nxt = getattr(current, "gi_yieldfrom", None)
        if nxt is None:
            nxt = getattr(current, "ag_await", None)
        if nxt is None and type(current).__name__ in _ASYNC_GEN_STEPS:
            nxt = _generator_behind(current)
        current = nxt
    return frames


#: What `await anext(gen)` and `async for` actually await: a step object that
#: does not expose its generator as an attribute.
_ASYNC_GEN_STEPS = {"async_generator_asend", "async_generator_athrow"}


def _generator_behind(step: object) -> Any:
    # Only used to write a report, so the cost of asking the collector is fine.
    for referent in gc.get_referents(step):
        if inspect.isasyncgen(referent):
            return referent
    return None


def user_await_site(awaitable: Any) -> Frame | None:
    """Return the innermost frame of the await chain that is in the user's code."""
    for frame in reversed(await_chain(awaitable)):
        if not is_library_file(frame[0]):
            return frame
    return None


def describe_task(task: asyncio.Task[Any]) -> str:
    """Describe a task for a report: its name, its coroutine and what it awaits."""
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", repr(coro))
    header = f"  task {task.get_name()!r} running {name}()"
    if task.done():
        return f"{header}: done"
    frames = await_chain(coro)
    if not frames:
        return f"{header}: not started yet"
    lines = [f"{header} is awaiting:"]
    lines.extend(f"    {format_frame(frame)}" for frame in frames)
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is not None:
        lines.append(f"    -> waiting on {_short_repr(waiter)}")
    return "\n".join(lines)


def describe_tasks(tasks: list[asyncio.Task[Any]]) -> str:
    """Describe every task in *tasks*, in name order so reports are stable."""
    ordered = sorted(tasks, key=lambda task: task.get_name())
    return "\n".join(describe_task(task) for task in ordered) or "  (no tasks)"


def _short_repr(obj: object, limit: int = 160) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."
