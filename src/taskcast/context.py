"""``Context``: what a running task gets to talk to the world (its log, signals, deadline)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from .errors import InvalidRequest
from .models import Event
from .stores.base import encode_json

if TYPE_CHECKING:
    from .coordinator import ActiveRun, Coordinator

RESERVED_EVENT_TYPES = frozenset(
    {"queued", "started", "retrying", "completed", "failed", "cancelled", "timed_out"}
    | {"shutdown", "signal"}
)
"""Event types only the coordinator writes; a task emitting one gets ``InvalidRequest``."""

MAX_EVENT_TYPE_LENGTH = 64


class Context:
    """The running task's handle on its run. One per attempt.

    ``run_id``, ``attempt`` (1-based), ``task`` and ``deadline`` (the event loop's clock, or
    ``None``) describe the attempt. Every method that writes returns once the event is in the
    run's log order; watchers see it once it is committed, which happens shortly and always
    before the run's terminal event (a crash in between loses it, and the run is retried).
    """

    def __init__(self, coordinator: Coordinator, active: ActiveRun, deadline: float | None) -> None:
        self._coordinator = coordinator
        self._active = active
        self.run_id = active.run.id
        self.task = active.run.task
        self.attempt = active.run.attempt
        self.deadline = deadline

    def time_left(self) -> float | None:
        """Seconds until this attempt times out (never negative), or ``None`` without a timeout."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())

    async def emit(self, type: str, data: Any = None) -> Event:
        """Append an event of your own ``type`` with JSON ``data`` to the run's log.

        Raises ``InvalidRequest`` for an empty, too long or reserved type (``started``,
        ``completed``...; see ``RESERVED_EVENT_TYPES``) and ``NotSerializable`` for data that is
        not JSON. Nothing is written then.
        """
        if not isinstance(type, str) or not type or len(type) > MAX_EVENT_TYPE_LENGTH:
            raise InvalidRequest(
                f"event type must be a non-empty string of at most {MAX_EVENT_TYPE_LENGTH}"
                f" characters, got {type!r}"
            )
        if type in RESERVED_EVENT_TYPES:
            raise InvalidRequest(
                f"event type {type!r} is reserved for the coordinator; choose another name"
            )
        data_json = encode_json(data, f"the data of event {type!r}")
        # Not durable: the event is ordered now and committed with the next batch (before the
        # run's terminal write, which is durable), so a chatty task does not wait for each one.
        return await self._coordinator.store.append(
            self.run_id, type, data, data_json, durable=False
        )

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

        Signals sent before this call are kept (up to ``MAX_PENDING_SIGNALS`` per name) and
        returned first, oldest first. Raises ``TimeoutError`` after ``timeout`` seconds. If
        cancelled while waiting, a signal that arrived at that moment is kept for the next call.
        """
        active = self._active
        pending = active.signals.get(name)
        if pending:
            return pending.popleft()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiters = active.signal_waiters.setdefault(name, deque())
        waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Delivered just as we were cancelled or timed out: keep it for the next call.
                active.signals.setdefault(name, deque()).appendleft(waiter.result())
            raise
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
