"""``StartTimes``: the ``scheduled`` runs of this process, until their start time.

A heap by ``run_at`` (Unix time) with one event-loop timer, for the earliest: however many runs
wait, one timer is armed; when it fires, the runs whose time has come are handed over
(``due(runs)``, in start-time order, ``BATCH`` at a time), and the timer is armed for the next.
A scheduled run holds no slot and is not counted as queued. A cancelled run is simply skipped
when its time comes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from . import clock
from .active import ActiveRun, Phase

EARLY = 0.001
"""Seconds early a run may be handed over (the loop's timers and the wall clock round apart)."""

BATCH = 1024
"""Runs handed over at most per turn of the loop: when 100,000 are due at once, the first are
being queued (and started) while the rest are taken from the heap."""


class StartTimes:
    """Scheduled runs by start time, and the one timer for the earliest."""

    def __init__(self, due: Callable[[list[ActiveRun]], None]) -> None:
        self._due = due
        self._heap: list[tuple[float, int, ActiveRun]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._held: set[str] = set()  # ids of the runs in the heap and not forgotten
        self.closed = False

    @property
    def count(self) -> int:
        """Scheduled runs held, waiting for their time."""
        return len(self._held)

    def add(self, active: ActiveRun) -> None:
        """Hold ``active`` (phase SCHEDULED) until its ``run.run_at``."""
        active.phase = Phase.SCHEDULED
        when = active.run.run_at or 0.0
        heapq.heappush(self._heap, (when, next(self._order), active))
        self._held.add(active.run.id)
        if self._armed_for is None or when < self._armed_for:
            self._arm()

    def forget(self, active: ActiveRun) -> bool:
        """``active`` leaves before its time (cancelled): it is skipped when it comes. True if
        it was still waiting here (False: its time came, it is being queued)."""
        if active.run.id not in self._held:
            return False
        self._held.discard(active.run.id)
        return True

    def close(self) -> None:
        """Stop handing runs over (shutdown: they stay scheduled in the store)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = None
        while self._heap and self._heap[0][2].run.id not in self._held:
            heapq.heappop(self._heap)
        if not self._heap or self.closed:
            return
        when = self._heap[0][0]
        loop = asyncio.get_running_loop()
        self._armed_for = when
        self._timer = loop.call_at(loop.time() + clock.seconds_until(when), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed_for = None
        now = clock.now() + EARLY
        due: list[ActiveRun] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(due) < BATCH:
            _, _, active = heapq.heappop(heap)
            if active.run.id in self._held:
                self._held.discard(active.run.id)
                due.append(active)
        self._arm()
        if due:
            self._due(due)
