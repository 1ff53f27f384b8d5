"""``Pruner``: deletes finished runs in the background, so a long-lived process stays bounded.

Each registered task has a ``Retention`` (its own, else the App's, else its store's default:
``memory://`` the newest 10,000 finished runs of each task for an hour at most; SQLite and
Redis 7 days). A pass asks the store to delete, task by task, the runs beyond it, in batches
of ``batch`` runs (``Store.prune_task``), letting other work run between batches. It never
deletes an unfinished run (stores only prune finished ones), nor one a dependent still waits
for (``spare``: the ids the engine's held runs wait on).

A pass runs every ``interval`` seconds, and as soon as ``batch`` runs finished since the last
one (the pruner counts the terminal events the store commits), so a burst of runs is pruned
while it lasts, not a minute later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence

from .. import events
from ..errors import TaskcastError
from ..models import Event
from ..policies import Retention
from ..stores.base import Store
from ..supervisor import Supervisor
from . import clock

logger = logging.getLogger("taskcast")

INTERVAL = 60.0
"""Seconds between two passes when few runs finish."""

BATCH = 1000
"""Runs deleted per store call, at most; and finished runs that start a pass early."""


class Pruner:
    """Prunes the finished runs of each task by its ``Retention`` (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        policies: Mapping[str, Retention],
        spare: Callable[[], Collection[str]] = frozenset,
        *,
        interval: float = INTERVAL,
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._policies = {task: p for task, p in policies.items() if not p.keeps_everything}
        self._spare = spare
        self.interval = interval
        self.batch = batch
        self.pruned = 0  # runs deleted by this process
        self._finished = 0  # runs finished since the last pass
        self._wake = asyncio.Event()
        self._supervisor = Supervisor()

    def start(self) -> None:
        """Start pruning in the background (nothing to do when every policy keeps all)."""
        if self._policies:
            self._supervisor.spawn(self._prune_forever(), name="taskcast retention")

    async def close(self) -> None:
        await self._supervisor.close(timeout=1.0)

    def note(self, committed: Sequence[Event]) -> None:
        """Count the runs that finished (an event listener); wake a pass every ``batch``."""
        if not self._policies:
            return
        for event in committed:
            if event.type in events.TERMINAL_EVENT_TYPES:
                self._finished += 1
        if self._finished >= self.batch:
            self._wake.set()

    async def prune(self) -> int:
        """One pass over every task; returns how many runs it deleted."""
        self._finished = 0
        total = 0
        for task, policy in self._policies.items():
            while True:
                spare = self._spare()
                deleted = await self._store.prune_task(
                    task,
                    finished_before=None if policy.age is None else clock.now() - policy.age,
                    keep=policy.count,
                    spare=spare,
                    limit=self.batch,
                )
                total += deleted
                self.pruned += deleted
                if deleted < self.batch:
                    break
                await asyncio.sleep(0)  # let runs and watchers have the loop between batches
        return total

    async def _prune_forever(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.prune()
            except TaskcastError as exc:  # the store is away: try again next time
                logger.warning("pruning finished runs failed: %s", exc)
