"""``Slots``: the concurrency limits of this process, in one object.

A run executes while it holds a slot: at most ``limit`` at once in all, at most its task's
``concurrency`` at once per task, or, for a task with a ``concurrency_key``, at most
``concurrency`` at once per value of that argument (``ActiveRun.key``). Why a run waits is
always one of these counts.

A run whose key is full waits in that key's *line* (``wait_for_key``), in the order it got
there, taking nothing; each time a run of the key ends, the head of the line is handed back to
the ready runs (``ready_again``), so the runs of one key start in order.

A parent that waits for its children *lends* its slot while it waits (``lending``), so a
waiting parent never holds the slot its children need, whatever the limits; before it goes on it
takes a slot back, ahead of every queued run (``_reclaiming`` is served first).

On a queue shared by several processes a task's ``concurrency`` also holds for the whole
deployment: a run holds a place there too (``ports.Leases``, kept by the work queue), which the
parent lends and takes back with its slot. It takes the place back *before* the slot: a run
never holds a slot while it waits for a place, so the runs holding places always get the slots
they wait for, and no wait goes round in a circle across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable

from .active import ActiveRun
from .ports import Leases


class _NoLeases:
    """No limit beyond this process's slots."""

    async def lend(self, run_id: str) -> None:
        return None

    async def take_back(self, run_id: str) -> None:
        return None

    def take_back_at_once(self, run_id: str) -> None:
        return None


class Slots:
    """Counts, take, release and lending of this process's slots (see the module docstring).

    ``dispatch`` is called whenever a slot is freed or asked back, to start what waits for one;
    ``ready_again(active)`` hands the head of a key's line back to the ready runs; ``leases``
    keeps the places under deployment-wide limits a lending parent lends too.
    """

    def __init__(
        self,
        limit: int,
        dispatch: Callable[[], None],
        leases: Leases | None = None,
        ready_again: Callable[[ActiveRun], None] = lambda active: None,
    ) -> None:
        self.limit = limit
        self._leases: Leases = leases if leases is not None else _NoLeases()
        self.used = 0
        self.by_task: Counter[str] = Counter()
        self.by_key: Counter[tuple[str, str]] = Counter()
        self._dispatch = dispatch
        self._ready_again = ready_again
        # Runs waiting for a slot of their key, per (task, key), in arrival order. The head may
        # also be among the ready runs (handed back when a slot of its key was freed).
        self._lines: dict[tuple[str, str], deque[ActiveRun]] = {}
        # Parents waiting to take a slot back, served before any queued run.
        self._reclaiming: deque[tuple[ActiveRun, asyncio.Future[None]]] = deque()

    @property
    def full(self) -> bool:
        """No slot is free in all."""
        return self.used >= self.limit

    def task_full(self, task: str, concurrency: int | None) -> bool:
        """``task`` runs as many at once as its ``concurrency`` allows (never, for ``None``)."""
        return concurrency is not None and self.by_task[task] >= concurrency

    def has_room(self, active: ActiveRun) -> bool:
        """A slot is free for ``active``, in all, for its task and for its key."""
        definition = active.definition
        return (
            not self.full
            and not self.task_full(definition.name, definition.task_concurrency)
            and not self.key_full(active)
        )

    def key_full(self, active: ActiveRun) -> bool:
        """The run's key runs as many at once as its task's ``concurrency`` allows."""
        if active.key is None:
            return False
        definition = active.definition
        assert definition.concurrency is not None
        return self.by_key[(definition.name, active.key)] >= definition.concurrency

    @property
    def in_lines(self) -> int:
        """Runs waiting in the line of their key."""
        return sum(len(line) for line in self._lines.values())

    def admit(self, active: ActiveRun) -> bool:
        """True if the ready run ``active`` may take a slot of its key now; else it joins the
        end of its key's line (or stays at its head) and waits there, and False. A run whose
        key has a line goes behind it, even if the key has room: the line is served first."""
        if active.key is None:
            return True
        line_key = (active.definition.name, active.key)
        line = self._lines.get(line_key)
        if line and line[0] is not active:
            if active not in line:
                line.append(active)
            active.held = "concurrency"
            return False
        if self.key_full(active):
            if line is None:
                line = self._lines[line_key] = deque()
            if not line:
                line.append(active)
            active.held = "concurrency"
            return False
        if line:  # it was the head: its turn came
            line.popleft()
            if not line:
                del self._lines[line_key]
        active.held = None
        return True

    def leave_line(self, active: ActiveRun) -> None:
        """Take a run that will not start (cancelled) out of its key's line."""
        if active.held != "concurrency" or active.key is None:
            return
        active.held = None
        line_key = (active.definition.name, active.key)
        line = self._lines.get(line_key)
        if line is None or active not in line:
            return
        was_head = line[0] is active
        line.remove(active)
        if not line:
            del self._lines[line_key]
        elif was_head and not self.key_full(line[0]):
            self._ready_again(line[0])

    def take(self, active: ActiveRun) -> None:
        self.used += 1
        self.by_task[active.definition.name] += 1
        if active.key is not None:
            self.by_key[(active.definition.name, active.key)] += 1
        active.holds_slot = True

    def release(self, active: ActiveRun) -> None:
        """Free the run's slot (once) and start what waits for it.

        Called as soon as the body is over: the slot limits bodies running at once, not the
        bookkeeping after them, so the next run need not wait for this one's terminal commit.
        """
        if not active.holds_slot:
            return
        active.holds_slot = False
        self.used -= 1
        name = active.definition.name
        self.by_task[name] -= 1
        if active.key is not None:
            line_key = (name, active.key)
            left = self.by_key[line_key] - 1
            if left:
                self.by_key[line_key] = left
            else:
                del self.by_key[line_key]  # keys come and go: keep only those in use
            line = self._lines.get(line_key)
            if line:
                self._ready_again(line[0])
        self._dispatch()

    def serve_reclaimers(self) -> None:
        """Give free slots back to waiting parents first, oldest request first."""
        if not self._reclaiming:
            return
        kept: deque[tuple[ActiveRun, asyncio.Future[None]]] = deque()
        while self._reclaiming:
            active, granted = self._reclaiming.popleft()
            if granted.done():
                continue  # given up on (cancelled)
            if self.has_room(active):
                self.take(active)
                granted.set_result(None)
            else:
                kept.append((active, granted))
        self._reclaiming = kept

    @contextlib.asynccontextmanager
    async def lending(self, active: ActiveRun) -> AsyncIterator[None]:
        """While the body inside waits (for children), lend the run's slot to others.

        On the way out the run takes a slot back before it continues, ahead of queued runs (it
        may wait for one). If the wait is cancelled, the slot is taken back at once. Waits may
        overlap (``gather`` of two maps): the slot is lent from the first until the last ends.
        """
        active.waits += 1
        try:
            if active.waits == 1 and active.holds_slot:
                self.release(active)
                active.lent = True
                await self._leases.lend(active.run.id)
            yield
        except asyncio.CancelledError:
            # A cancelled waiter must not wait for a slot: take it back at once (possibly over
            # the limit for a moment). Usually the body is ending and frees it right away; if it
            # is the body's own timeout, the body goes on holding its slot as it should.
            if self._last_wait_over(active) and not active.holds_slot:
                self.take(active)
                self._leases.take_back_at_once(active.run.id)
            raise
        except BaseException:
            if self._last_wait_over(active):
                await self._reclaim(active)
            raise
        if self._last_wait_over(active):
            await self._reclaim(active)

    @staticmethod
    def _last_wait_over(active: ActiveRun) -> bool:
        """Count a wait out; True when it was the last one and the slot is lent."""
        active.waits -= 1
        if active.waits or not active.lent:
            return False
        active.lent = False
        return True

    async def _reclaim(self, active: ActiveRun) -> None:
        if active.holds_slot or active.stop is not None:
            return
        await self._leases.take_back(active.run.id)  # the place first: see the module docstring
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reclaiming.append((active, granted))
        self._dispatch()
        try:
            await granted
        finally:
            if not granted.done():
                granted.cancel()  # serve_reclaimers skips it
