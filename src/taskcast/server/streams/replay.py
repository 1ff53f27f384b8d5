"""Streams replaying a log: the share of the event loop they may take together, and their cut
when the server stops.

After a deploy every client reconnects at once and replays from its ``Last-Event-ID``: a
thousand streams each writing a page of a thousand events is a second of work, and done as it
comes it all lands in the same turns of the loop, while the runs' own tasks, the commits and the
live broadcasts wait behind it (emission fell to a few events per second; other runs' watchers
waited seconds).

So replays write under a ``ReplayBudget``, a token bucket of loop time: a step (one page written)
starts only while the bucket holds time; each step's duration is taken out of it, and it
grows back at ``share`` seconds per second, up to ``burst``. Together the replays thus take at
most about ``share`` of the loop, in slices of about ``burst``; the rest goes to the runs' tasks,
the commits and the live broadcasts, and the loop also goes idle, which matters as much: the
store's threads need the GIL, and a loop that never sleeps makes each of them wait up to a switch
interval (5 ms) for it, for each commit. Waiting streams go oldest first.

Waking every waiting stream each time would itself cost a slice, so each refill wakes about as
many as the bucket fits, by the measured cost of a step.

A replay is also cut short the moment the server begins to stop (``CutWhenStopping``): it ends
with a ``shutdown`` event that names where the client resumes (``shutdown_frame``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ...app import App


class ReplayBudget:
    """The time replay steps of every stream may take, as a share of the loop (see above)."""

    def __init__(self, share: float = 0.5, burst: float = 0.005) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if not burst > 0:
            raise ValueError(f"burst must be a positive number of seconds, got {burst}")
        self.share = share
        self.burst = burst
        self._tokens = burst  # seconds of replay work allowed now
        self._updated = time.perf_counter()
        self._step = burst / 10  # the measured cost of a step, averaged
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._refill: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Streams waiting for their turn to replay (for tests and metrics)."""
        return len(self._waiters)

    async def step(self) -> _Step:
        """Wait for room, then time the step: ``with await budget.step(): ...``."""
        while self._waiters or self._available() <= 0:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._schedule_refill()
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
            if self._available() > 0:
                break
        return _Step(self)

    def _available(self) -> float:
        now = time.perf_counter()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.share)
        self._updated = now
        return self._tokens

    def _spend(self, seconds: float) -> None:
        self._tokens -= seconds
        self._step += (seconds - self._step) / 16

    def _schedule_refill(self) -> None:
        if self._refill is None:
            # When the spent budget has grown back: the loop is free meanwhile (other work, or
            # idle, which lets threads such as the store's take the GIL at once).
            delay = max(0.0, -self._available()) / self.share
            self._refill = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        """Wake as many waiters, oldest first, as the budget fits; the rest wait again."""
        self._refill = None
        fits = max(1, math.ceil(self._available() / max(self._step, 1e-6)))
        while self._waiters and fits:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                fits -= 1
        if self._waiters:
            self._schedule_refill()


class _Step:
    """Times one replay step against its budget."""

    __slots__ = ("_began", "_budget")

    def __init__(self, budget: ReplayBudget) -> None:
        self._budget = budget
        self._began = 0.0

    def __enter__(self) -> None:
        self._began = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._budget._spend(time.perf_counter() - self._began)


def shutdown_frame(cursor: int) -> bytes:
    """The ``shutdown`` event that ends a replay cut short by a stopping server.

    It has no ``id``: the client's last event id stays ``cursor``, the last event it was sent, so
    its reconnect (``Last-Event-ID``) resumes right there on the next server. The run's own
    ``shutdown`` event, if it gets one, is in its log and comes in the replay like any other.
    """
    return b'event: shutdown\ndata: {"reason":"shutdown","resume_after":%d}\n\n' % cursor


class CutWhenStopping:
    """Cancel the block the moment ``app`` begins to stop (never, with no app); ``cut`` then
    says so and the block ends quietly.

    A reconnect storm can leave thousands of streams replaying long logs when a deploy stops the
    server: each would otherwise replay to its end before it gets its ``shutdown`` event, far past
    the stop's bound. Live streams (members of a broadcast) are not cut: they get the run's own
    ``shutdown`` event when the log closes.
    """

    def __init__(self, app: App | None) -> None:
        self._app = app
        self._scope = asyncio.timeout(None)
        self._unsubscribe: Callable[[], None] = lambda: None
        self.cut = False

    async def __aenter__(self) -> None:
        await self._scope.__aenter__()
        if self._app is not None:
            self._unsubscribe = self._app.when_stopping(self._stop)

    def _stop(self) -> None:
        self._scope.reschedule(asyncio.get_running_loop().time())

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        self._unsubscribe()
        try:
            await self._scope.__aexit__(kind, error, tb)
        except TimeoutError:
            if not self._scope.expired():
                raise
            self.cut = True
            return True
        return False
