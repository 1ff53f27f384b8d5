"""``Context``: what a running task gets to talk to the world (its log, signals, deadline)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from ..events import RESERVED_EVENT_TYPES
from ..models import Event, encode_json
from ..names import check_event_type
from .active import ActiveRun
from .family import ChildRun, map_children, spawn
from .ports import RunServices
from .steps import Steps

__all__ = ["RESERVED_EVENT_TYPES", "Context"]  # the vocabulary lives in events.py


class Context:
    """The running task's handle on its run. One per attempt.

    ``run_id``, ``attempt`` (1-based), ``task`` and ``deadline`` (the event loop's clock, or
    ``None``) describe the attempt. Every method that writes returns once the event is in the
    run's log order; watchers see it once it is committed, which happens shortly and always
    before the run's terminal event (a crash in between loses it, and the run is retried).
    """

    def __init__(self, services: RunServices, active: ActiveRun, deadline: float | None) -> None:
        self._services = services
        self._active = active
        self.run_id = active.run.id
        self.task = active.run.task
        self.attempt = active.run.attempt
        self.deadline = deadline
        self._next_child = 0
        # Durable calls (``step``, ``sleep``, ``signal``): made on first use, or at once when
        # this attempt may replay (its events then compared with the recorded ones).
        self._steps: Steps | None = Steps(services, active) if self.attempt > 1 else None

    def _durable(self) -> Steps:
        steps = self._steps
        if steps is None:
            steps = self._steps = Steps(self._services, self._active)
        return steps

    def _reserve_children(self, count: int) -> int:
        """The position of the first of ``count`` children about to be spawned, in order."""
        first = self._next_child
        self._next_child += count
        return first

    def time_left(self) -> float | None:
        """Seconds until this attempt times out (never negative), or ``None`` without a timeout."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def emit(self, type: str, data: Any = None) -> Event:
        """Append an event of your own ``type`` with JSON ``data`` to the run's log.

        Raises ``InvalidRequest`` for a type that is not 1 to 64 characters from letters, digits
        and ``._:-`` (see ``taskcast.names``) or that the engine writes (``started``,
        ``completed``...; see ``events.RESERVED_EVENT_TYPES``), and ``NotSerializable`` for data
        that is not JSON. Nothing is written then.
        """
        check_event_type(type)
        data_json = encode_json(data, f"the data of event {type!r}")
        steps = self._steps
        if steps is not None and steps.replaying:
            # Running again after recorded steps: an event already in the log is not repeated.
            recorded = await steps.suppressed(type, data_json)
            if recorded is not None:
                return recorded
        # Not durable: the event is ordered now and committed with the next batch (before the
        # run's terminal write), so a chatty task does not wait for each one.
        return await self._services.emit(self.run_id, type, data, data_json)

    async def progress(
        self, current: float, total: float | None = None, message: str | None = None
    ) -> Event:
        """Emit ``progress`` with ``current``, ``total`` and optional ``message``."""
        data: dict[str, Any] = {"current": current, "total": total}
        if message is not None:
            data["message"] = message
        return await self.emit("progress", data)

    async def log(self, message: str, level: str = "info") -> Event:
        """Emit a ``log`` event: a line of text for whoever watches the run."""
        return await self.emit("log", {"message": str(message), "level": level})

    async def signal(self, name: str, timeout: float | None = None) -> Any:
        """Wait for the signal ``name`` (sent with ``app.signal``) and return its data.

        Signals sent before this call are kept (up to ``limits.MAX_PENDING_SIGNALS`` of one name
        and ``App(max_pending_signals=...)`` in all) and returned first, oldest first. Raises
        ``TimeoutError`` after ``timeout`` seconds (finite, at most 30 days: else
        ``InvalidRequest``). If cancelled while waiting, a signal that arrived at that moment is
        kept for the next call. Raises ``InvalidRequest`` for a name no one could send (see
        ``taskcast.names``).

        Durable: the signal taken is recorded in the run's log (a ``step`` of kind ``signal``)
        before this returns, so a body that runs again gets the same data back at once instead
        of waiting again (a timeout is not recorded). It takes a step position (see ``step``).
        """
        return await self._durable().signal(name, timeout)

    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: int = 0,
        backoff: float = 1.0,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` once per run and return its result, recorded durably.

        ``fn`` is a coroutine function (awaited here) or a plain function (called in a worker
        thread). Its result must be JSON: it is written to the run's log as a ``step`` event
        (``{"kind": "step", "name", "index", "result", ...}``) before this returns. When the
        body runs again (resumed after a stop or crash, retried, re-delivered, or ``App.retry``),
        a step already recorded returns the recorded result without calling ``fn`` (as JSON
        reads it back: a tuple comes back a list); the first without a record runs. Steps are
        at-least-once: a crash after ``fn`` returned and before the record is durable calls it
        again.

        Steps are matched by position (the n-th durable call of the body: ``step``, ``sleep``,
        ``signal``); a recorded position asked for under another name or kind raises
        ``StepMismatch`` and the run fails without a retry. ``retries``: further calls of ``fn``
        after it raises, with exponential backoff from ``backoff`` seconds (full jitter); a
        step that fails for good has its error recorded and raises it (a later attempt runs it
        again). ``name`` follows the event-type rule (1-64 characters from letters, digits and
        ``._:-``); bad ``name``, ``retries`` or ``backoff``: ``InvalidRequest``. Cancelling the
        call cancels ``fn`` (a function in a thread finishes on its own; its result is dropped)
        and records nothing. ``fn`` cannot take keyword arguments named ``retries`` or
        ``backoff`` (wrap it in ``functools.partial``).
        """
        return await self._durable().step(name, fn, args, kwargs, retries, backoff)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, durably: the wake-up time is recorded first, so a body that runs
        again (after a restart, say) sleeps only what is left of it, or not at all.

        While it sleeps the run lends its concurrency slot (another run may start in it) and
        takes one back before it returns. ``seconds``: a finite number from 0 to 30 days, else
        ``InvalidRequest``. It takes a step position (see ``step``); cancelling it is immediate.
        """
        await self._durable().sleep(seconds)

    # -- workflows ---------------------------------------------------------------------------

    async def spawn(self, task: str, /, **args: Any) -> ChildRun:
        """Start a child run of ``task`` with ``args`` and return its handle (``await`` it for
        the result; ``.run_id`` is its id).

        The child is a run of its own, with this run as its ``parent_id``; a ``child`` event is
        added to this run's log. Its deadline never exceeds this attempt's. When this body
        exits (returns, raises, is cancelled or times out), the children still unfinished are
        cancelled and waited for. Raises ``UnknownTask``, ``InvalidArguments``, ``QueueFull``,
        ``ShuttingDown`` as ``app.submit`` does. See ``taskcast.runs.family`` for how a retried or
        resumed parent gets its earlier children back.
        """
        return await spawn(self._services, self._active, task, args, self._reserve_children(1))

    async def map(
        self,
        task: str,
        items: Iterable[Mapping[str, Any]],
        *,
        concurrency: int | None = None,
        isolate: bool = False,
        timeout: float | None = None,
    ) -> list[Any]:
        """Run ``task`` once per argument dict in ``items`` as child runs; return their results
        in the order of ``items``.

        ``concurrency``: children unfinished at once (default: all). While it waits, this run
        lends its concurrency slot to the children and takes one back before it returns.

        The first child that does not complete cancels its running siblings (their cleanup
        runs), no further child starts, and its ``TaskFailed`` is raised, with ``partial``: the
        results of the children that completed, by index. With ``isolate=True`` nothing is
        raised for children: the list holds each result or ``TaskFailed``, side by side.

        ``timeout``: seconds for the whole batch; then the unfinished children are cancelled
        and ``BatchTimedOut`` (a ``TimeoutError``) is raised with ``partial``; with ``isolate``
        their places hold ``TaskFailed`` (cancelled) instead. If this run itself is cancelled
        or times out, every child is cancelled.
        """
        return await map_children(
            self._services,
            self._active,
            self._reserve_children,
            task,
            items,
            concurrency=concurrency,
            isolate=isolate,
            timeout=timeout,
        )

    def resource(self, name: str, timeout: float | None = None) -> AbstractAsyncContextManager[Any]:
        """Borrow an item of the pool ``name`` (registered with ``app.resource``) for an
        ``async with`` block: ``async with ctx.resource("db") as conn: ...``.

        Waiters are served in arrival order. Raises ``ResourceTimeout`` after ``timeout`` seconds
        (default: the pool's), ``ResourceError`` for an unknown name or a closed pool. The item
        goes back to the pool however the block ends, cancellation included.
        """
        return self._services.resources.pool(name).borrow(timeout)

    @property
    def http(self) -> httpx.AsyncClient:
        """The app's shared ``httpx.AsyncClient`` (one connection pool for every task; closed
        at shutdown). Do not close it yourself."""
        return self._services.resources.http
