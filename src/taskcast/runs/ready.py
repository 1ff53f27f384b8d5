"""``ReadyRuns``: the runs of this process ready to start, per task, in the order they start.

Per task, a heap by ``ActiveRun.rank`` (``policies.rank``: the time the run became ready, less
``AGEING`` seconds per level of priority), then by arrival. So among runs ready at the same time
a higher priority starts first, equal priorities start in arrival order (FIFO), and a low
priority is never starved: a run waits behind newer runs of higher priority for at most
``9 * AGEING`` seconds. The coordinator picks, across tasks with room, the head with the
smallest rank.

A run leaves early without being searched for: a cancelled run (no longer WAITING) or an entry
made stale by a later ``add`` of the same run is dropped when it reaches the head.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterator

from ..policies import rank
from .active import ActiveRun, Phase

_Entry = tuple[float, int, ActiveRun]


class ReadyRuns:
    """Ready runs per task, smallest rank first (see the module docstring)."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[_Entry]] = {}
        self._order = itertools.count()

    def add(self, active: ActiveRun, *, again: bool = False) -> None:
        """Make ``active`` ready. Its rank is set from now and its priority the first time;
        ``again`` (a run handed back by a line) keeps the rank it had, so it keeps its place."""
        if not again:
            ready_at = asyncio.get_running_loop().time()
            active.rank = rank(ready_at, active.run.priority)
        active.order = next(self._order)
        heap = self._heaps.get(active.definition.name)
        if heap is None:
            heap = self._heaps[active.definition.name] = []
        heapq.heappush(heap, (active.rank, active.order, active))

    def head(self, task: str) -> ActiveRun | None:
        """The next run of ``task`` to start, or None (stale entries are dropped on the way)."""
        heap = self._heaps.get(task)
        while heap:
            _, order, active = heap[0]
            if active.phase is Phase.WAITING and active.order == order:
                return active
            heapq.heappop(heap)
        return None

    def pop(self, task: str) -> ActiveRun:
        """Take the head of ``task`` (call ``head`` first)."""
        return heapq.heappop(self._heaps[task])[2]

    def tasks(self) -> Iterator[str]:
        """The tasks that may have ready runs."""
        return iter(self._heaps)

    def waiting(self, task: str) -> int:
        """Entries of ``task`` (stale ones included: an upper bound)."""
        return len(self._heaps.get(task, ()))

    def in_order(self, task: str) -> list[ActiveRun]:
        """The live ready runs of ``task``, in the order they would start."""
        return [
            active
            for _, order, active in sorted(self._heaps.get(task, ()), key=lambda e: e[:2])
            if active.phase is Phase.WAITING and active.order == order
        ]

    def remove(self, active: ActiveRun) -> None:
        """Take ``active`` out (it starts now, out of turn)."""
        heap = self._heaps.get(active.definition.name)
        if heap is None:
            return
        for index, (_, order, entry) in enumerate(heap):
            if entry is active and order == active.order:
                heap[index] = heap[-1]
                heap.pop()
                heapq.heapify(heap)
                return
