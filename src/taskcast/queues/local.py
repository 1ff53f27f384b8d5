"""``LocalQueue``: the work queue of a process that owns its store (``memory://``, ``sqlite://``).

One process stores, queues and executes every run, so the queue is the engine's own: a run this
process submits is handed to it at once (``accept``), and at start it resumes every unfinished
run the store holds (those a stop or a crash interrupted). Its bound (``max_queue``) counts the
runs this process holds waiting, and the runs being stored.

A run it does not hold has no other taker: a cancel moves it to ``cancelled`` in the store if it
can (a queued run of a task this process does not register), and a signal is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import QueueFull
from ..models import CancelAnswer, Run
from ..runs.ports import QueueCounts, QueueOwner
from ..stores.base import Store


class LocalQueue:
    """The work queue of one process that owns its store (see the module docstring)."""

    shared = False

    def __init__(self, store: Store, max_queue: int = 10_000) -> None:
        self._store = store
        self.max_queue = max_queue
        self._owner: QueueOwner  # set by ``start``, before any other call
        self._reserved = 0  # runs being stored, not yet handed over

    async def start(self, owner: QueueOwner, *, take: bool = True) -> list[str]:
        """Resume the store's unfinished runs; returns their ids. Raises ``ValueError`` for
        ``take=False``: nobody else would execute the runs."""
        if not take:
            raise ValueError(
                f"worker=False needs a store that workers share (redis://), not {self._store.url!r}"
            )
        self._owner = owner
        return await owner.resume(await self._store.unfinished_runs())

    def reserve(self, runs: Sequence[Run]) -> None:
        if self._owner.queued_count + self._reserved + len(runs) > self.max_queue:
            raise QueueFull(self.max_queue, retry_after=1.0)
        self._reserved += len(runs)

    def unreserve(self, runs: Sequence[Run]) -> None:
        self._reserved -= len(runs)

    def accept(self, run: Run) -> None:
        """Hand the run to this process's engine: to start, or to hold until its ``after``
        dependencies end (this store does not hold runs)."""
        self._reserved -= 1
        if run.after:
            self._owner.hold(run)
        else:
            self._owner.take_over(run)

    def room_freed(self) -> None:
        """Nothing to do: every run of this process is queued in it already."""

    async def lend(self, run_id: str) -> None:
        """Nothing to do: this process's ``Slots`` are the only limits."""

    async def take_back(self, run_id: str) -> None:
        """Nothing to do (see ``lend``)."""

    def take_back_at_once(self, run_id: str) -> None:
        """Nothing to do (see ``lend``)."""

    async def cancel(self, run_id: str, reason: str) -> CancelAnswer:
        return await self._owner.cancel_in_store(run_id, reason)

    async def signal(self, run_id: str, name: str, data: Any) -> None:
        await self._owner.signal_here(run_id, name, data)

    def signal_taken(self, run_id: str, name: str) -> None:
        """Nothing to do: the run's mailbox, in this process, keeps the count."""

    async def stop_taking(self) -> None:
        """Nothing to do: this queue never takes runs from elsewhere."""

    async def hand_back(self, unfinished: Sequence[str]) -> None:
        """Nothing to do: unfinished runs stay in the store, resumed on the next start."""

    async def counts(self) -> QueueCounts:
        queued, running = self._owner.counts()
        scheduled, rate_limited = self._owner.waiting_counts()
        return QueueCounts(queued, running, "process", scheduled, rate_limited)
