"""``Scheduler``: fires the ticks of the app's schedules (``taskcast.schedules``) in this process.

One task per schedule, owned by the scheduler's ``Supervisor``, sleeps (on the event loop's
timers, so virtual time moves it) until the next tick, then submits the tick's run under the id
derived from the schedule and the tick. Every process sharing the store does the same, and the
store creates a run for an id once: a tick starts at most one run however many processes (or
restarts) fire it. The store keeps each schedule's state (paused or not, latest tick, its run),
so a pause on one process holds for all, and a process starting after a stop knows which ticks
it missed: ``catch_up="latest"`` starts the latest of them, ``"none"`` skips them.

Counts (this process): ``started`` (ticks whose run this process created) and ``skipped``
(ticks missed while down and not caught up, or fired while paused, or refused by the queue).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..errors import ShuttingDown, TaskcastError
from ..models import Run
from ..schedules import Schedule
from ..stores.base import Store
from ..supervisor import Supervisor
from . import clock

logger = logging.getLogger("taskcast")

EARLY = 0.001
"""Seconds early a tick may fire (the loop's timers and the wall clock round apart)."""

Submit = Callable[[Schedule, float | None], Awaitable[tuple[Run, bool]]]
"""Submit the run of a schedule's tick (``None``: a trigger, out of turn); the run, and True
if this call created it."""


class Scheduler:
    """The schedules of one App, fired in this process (see the module docstring)."""

    def __init__(self, schedules: Mapping[str, Schedule], store: Store, submit: Submit) -> None:
        self._schedules = schedules
        self._store = store
        self._submit = submit
        self._supervisor = Supervisor()
        self.started: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    def start(self) -> None:
        """Start one task per schedule."""
        for schedule in self._schedules.values():
            self._supervisor.spawn(self._keep(schedule), name=f"taskcast schedule {schedule.name}")

    async def close(self) -> None:
        """Stop firing ticks (a tick being submitted is cancelled; its run exists or not)."""
        await self._supervisor.close(timeout=1.0)

    def schedule(self, name: str) -> Schedule:
        """The schedule ``name``, or ``KeyError``."""
        return self._schedules[name]

    async def describe(self, schedule: Schedule) -> dict[str, Any]:
        """The schedule as JSON: its definition, ``paused``, ``next_tick`` (None while paused),
        ``last_tick`` and ``last_run``, and this process's counts."""
        state = await self._store.schedule_state(schedule.name)
        paused = self._paused(schedule, state.paused)
        return {
            **schedule.describe(),
            "paused": paused,
            "next_tick": None if paused else schedule.next_tick(clock.now()),
            "last_tick": state.last_tick,
            "last_run": state.last_run,
            "ticks_started": self.started[schedule.name],
            "ticks_skipped": self.skipped[schedule.name],
        }

    async def set_paused(self, schedule: Schedule, paused: bool) -> None:
        """Pause or resume ``schedule`` for every process sharing the store."""
        await self._store.set_schedule_paused(schedule.name, paused)

    async def trigger(self, schedule: Schedule) -> Run:
        """Start a run of ``schedule`` now, out of turn (paused or not)."""
        run, _ = await self._submit(schedule, None)
        await self._store.record_tick(schedule.name, None, run.id)
        return run

    @staticmethod
    def _paused(schedule: Schedule, stored: bool | None) -> bool:
        return (not schedule.enabled) if stored is None else stored

    async def _keep(self, schedule: Schedule) -> None:
        """Fire ``schedule``'s ticks until closed: first what was missed, then each on time."""
        try:
            after = await self._catch_up(schedule)
            while True:
                tick = schedule.next_tick(after)
                # A timer, not a poll: it sleeps until the tick (again if woken a little early).
                while (wait := tick - clock.now()) > EARLY:  # noqa: ASYNC110
                    await asyncio.sleep(wait)
                await self._fire(schedule, tick)
                after = tick
        except ShuttingDown:
            return

    async def _catch_up(self, schedule: Schedule) -> float:
        """Deal with the ticks missed since the last one recorded; returns the time to look
        for the next tick after."""
        now = clock.now()
        try:
            state = await self._store.schedule_state(schedule.name)
        except TaskcastError as exc:
            logger.warning("schedule %s: cannot read its state (%s)", schedule.name, exc)
            return now
        last, latest = state.last_tick, schedule.latest_tick(now)
        if last is None or latest is None or latest <= last:
            return now  # first start, or nothing missed
        missed = schedule.ticks_between(last, latest)
        if self._paused(schedule, state.paused) or schedule.catch_up == "none":
            self.skipped[schedule.name] += missed
            logger.info("schedule %s: skipped %d tick(s) missed", schedule.name, missed)
            await self._store.record_tick(schedule.name, latest, state.last_run or "")
            return now
        self.skipped[schedule.name] += missed - 1
        await self._fire(schedule, latest)
        return now

    async def _fire(self, schedule: Schedule, tick: float) -> None:
        """Start the run of ``tick`` (or count it skipped while paused)."""
        name = schedule.name
        try:
            state = await self._store.schedule_state(name)
            if self._paused(schedule, state.paused):
                self.skipped[name] += 1
                return
            run, created = await self._submit(schedule, tick)
            await self._store.record_tick(name, tick, run.id)
        except ShuttingDown:
            raise
        except TaskcastError as exc:  # a full queue, a store away: this tick is lost
            self.skipped[name] += 1
            logger.warning("schedule %s: the tick at %s started no run: %s", name, tick, exc)
            return
        if created:
            self.started[name] += 1
