"""``Mailbox``: the signals sent to one run, kept until its task asks for them.

A signal is logged first (a ``signal`` event), then handed to the run's mailbox: to the oldest
``ctx.signal(name)`` waiting for it, or kept for the next one. What a mailbox keeps is bounded:
``MAX_PENDING_SIGNALS`` of one name and a per-run total (``App(max_pending_signals=...)``),
checked and counted *before* the log write's await, so concurrent senders cannot overshoot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from ..errors import TooManySignals
from ..limits import MAX_PENDING_SIGNALS, check_timeout


class Mailbox:
    """The signals of one run: those kept, those being logged, and the tasks waiting."""

    __slots__ = ("_from_log", "_held", "_kept", "_sending", "_waiters")

    def __init__(self) -> None:
        self._kept: dict[str, deque[Any]] = {}
        self._waiters: dict[str, deque[asyncio.Future[Any]]] = {}
        # Signals held for the task: kept, or being logged (``_sending`` by name).
        self._held = 0
        self._sending: dict[str, int] = {}
        # Of the signals kept by name, how many at the front were handed over from the run's
        # log when this process took the run (some may have been taken by an earlier attempt).
        self._from_log: dict[str, int] = {}

    def deliver(self, name: str, data: Any, *, from_log: bool = False) -> None:
        """Hand a logged signal to the oldest waiter of ``name``, or keep it. ``from_log``: a
        signal of the run's log handed over with the run (``QueueOwner.take_over``)."""
        if from_log:
            self._keep(name, data)
            self._from_log[name] = self._from_log.get(name, 0) + 1
            return
        for waiter in self._waiters.get(name, ()):
            if not waiter.done():
                waiter.set_result(data)
                return
        self._keep(name, data)

    def discard_from_log(self, name: str) -> None:
        """Drop the oldest signal ``name`` handed over from the log, if one is still kept: a
        durable ``ctx.signal`` replayed its record, so an earlier attempt took it."""
        if self._from_log.get(name):
            self._took_from_log(name)
            self._kept[name].popleft()
            self._held -= 1

    def _took_from_log(self, name: str) -> None:
        left = self._from_log.get(name, 0) - 1
        if left > 0:
            self._from_log[name] = left
        else:
            self._from_log.pop(name, None)

    def _keep(self, name: str, data: Any, *, first: bool = False) -> None:
        pending = self._kept.setdefault(name, deque())
        if first:
            pending.appendleft(data)
        else:
            pending.append(data)
        self._held += 1

    def hold(self, run_id: str, name: str, most: int) -> None:
        """Count a signal about to be logged, or raise ``TooManySignals`` when the run holds
        ``MAX_PENDING_SIGNALS`` of that name or ``most`` in all. Call ``release`` once the
        write is over, whatever its outcome."""
        if len(self._kept.get(name, ())) + self._sending.get(name, 0) >= MAX_PENDING_SIGNALS:
            raise TooManySignals(run_id, MAX_PENDING_SIGNALS, name)
        if self._held >= most:
            raise TooManySignals(run_id, most)
        self._sending[name] = self._sending.get(name, 0) + 1
        self._held += 1

    def release(self, name: str) -> None:
        """Undo ``hold`` once the signal is logged (and delivered) or its write failed."""
        left = self._sending[name] - 1
        if left:
            self._sending[name] = left
        else:
            del self._sending[name]
        self._held -= 1

    async def receive(self, name: str, timeout: float | None = None) -> Any:
        """The data of the oldest signal ``name`` kept, or of the next one to arrive.

        Raises ``TimeoutError`` after ``timeout`` seconds (finite, at most 30 days: else
        ``InvalidRequest``). If cancelled while waiting, a signal that arrived at that moment
        is kept for the next call.
        """
        check_timeout(timeout)
        pending = self._kept.get(name)
        if pending:
            self._held -= 1
            if self._from_log:
                self._took_from_log(name)
            return pending.popleft()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(name, deque())
        waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Delivered just as we were cancelled or timed out: keep it for the next call.
                self._keep(name, waiter.result(), first=True)
            raise
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
