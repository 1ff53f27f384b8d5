"""The engine's ports: the small protocols through which other modules talk to it.

* ``RunServices``: what a running task's ``Context`` and its children's handles may ask of the
  engine (write to the log, spawn and await children, cancel, borrow resources).
* ``WorkQueue``: where runs wait until a process takes them. One implementation per deployment
  mode (``taskcast.queues``): the engine reads no "is the queue shared" flag, it calls its queue.
* ``QueueOwner``: what a work queue may ask of the engine that takes runs from it.

No module reaches into another's private names: each gets one of these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..models import CancelAnswer, Event, Run
from ..resources import Resources
from ..tasks import TaskDefinition
from .active import ActiveRun


class RunServices(Protocol):
    """What a running task (through its ``Context``) may ask of the engine."""

    @property
    def resources(self) -> Resources: ...

    def definition(self, task: str) -> TaskDefinition:
        """The registered task ``task``, or ``UnknownTask``."""
        ...

    async def emit(self, run_id: str, type: str, data: Any, data_json: str) -> Event:
        """Append an event of the run's own to its log (ordered now, committed shortly)."""
        ...

    async def record(self, run_id: str, type: str, data: Any, data_json: str) -> Event:
        """Append an event the engine writes for the run (a durable step's record) to its log;
        returns once it is durable."""
        ...

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events of the run's log after ``after``, in order."""
        ...

    async def get_run(self, run_id: str) -> Run | None:
        """The run as stored, or None."""
        ...

    async def emit_many(self, run_id: str, entries: Sequence[tuple[str, Any, str]]) -> list[Event]:
        """``emit`` for several events ``(type, data, data_json)``, written together."""
        ...

    def lending_slot(self, active: ActiveRun) -> AbstractAsyncContextManager[None]:
        """Lend the run's concurrency slot while the block inside waits for children."""
        ...

    def start_child(
        self,
        parent: ActiveRun,
        definition: TaskDefinition,
        args: Any,
        run_id: str | None,
        *,
        fresh: bool = False,
    ) -> asyncio.Task[ChildSubmission | Exception]:
        """Begin submitting a child of the running ``parent``; returns the submission's task,
        whose outcome ``child_submitted`` gives."""
        ...

    async def watch_end(self, run_id: str) -> asyncio.Future[Event]:
        """A future resolved with the run's terminal (or ``shutdown``) event."""
        ...

    def adopt(self, parent: ActiveRun, child_id: str) -> None:
        """Count ``child_id`` among ``parent``'s unfinished children until it ends."""
        ...

    async def cancel(self, run_id: str, reason: str) -> bool:
        """See ``App.cancel``."""
        ...

    def signal_taken(self, run_id: str, name: str) -> None:
        """The run's task took a signal of ``name`` (``ctx.signal`` returned it)."""
        ...


@dataclass(frozen=True, slots=True)
class ChildSubmission:
    """A child run as submitted: the run, and the future of its end (``None`` when ``run``
    existed already: an earlier attempt's child with the same id, returned as it is)."""

    run: Run
    ending: asyncio.Future[Event] | None


async def child_submitted(
    creating: asyncio.Task[ChildSubmission | Exception],
) -> ChildSubmission:
    """The outcome of ``RunServices.start_child``; raises what submitting raised. Awaited
    shielded: a parent cancelled meanwhile cannot leave the child stored but never queued."""
    outcome = await asyncio.shield(creating)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Runs queued and running, counted by the work queue: ``scope`` says for whom (this
    ``process``, or the whole ``deployment`` sharing the queue). ``scheduled``: runs waiting for
    their start time; ``rate_limited``: queued runs (among ``queued``) waiting for their rate."""

    queued: int
    running: int
    scope: Literal["process", "deployment"]
    scheduled: int = 0
    rate_limited: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    """A task's limits a shared queue applies to each new run: ``rate_interval`` (seconds between
    two starts; 0: none) per value of the ``rate_key`` argument; at most ``key_limit`` runs at
    once per value of the ``key`` argument (0: none). ``*_default``: the JSON of the argument's
    default, for runs that leave it out."""

    rate_interval: float = 0.0
    rate_key: str = ""
    rate_default: str = "null"
    key: str = ""
    key_default: str = "null"
    key_limit: int = 0


class QueueOwner(Protocol):
    """What a work queue may ask of the engine that takes runs from it."""

    @property
    def queued_count(self) -> int:
        """Runs this process owns that wait to start."""
        ...

    def knows(self, task: str) -> bool:
        """The task is registered here (a run of another task is left alone)."""
        ...

    def holds(self, run_id: str) -> bool:
        """This process owns the run (queued here, or executing)."""
        ...

    def room(self) -> dict[str, int]:
        """How many more runs of each task this process can take now."""
        ...

    def deployment_limit(self, task: str) -> int | None:
        """Runs of ``task`` that may execute at once in the whole deployment (its
        ``concurrency``), or None: a shared queue enforces it across processes."""
        ...

    def admission(self, task: str) -> Admission:
        """What a shared queue checks before it hands a new run of ``task`` over, for the
        whole deployment: its rate limit and its per-key concurrency."""
        ...

    def take_over(self, run: Run, signals: Sequence[tuple[str, Any]] = ()) -> None:
        """Own a stored, queued run that may start (its dependencies, if it has any, have
        ended): queue it here, with the signals it was sent before, in order."""
        ...

    def hold(self, run: Run) -> None:
        """Own a stored run that waits here for the runs it was submitted ``after`` (a local
        queue: a shared one gets such runs from the store once they may start)."""
        ...

    async def resume(
        self, runs: Sequence[Run], signals: Mapping[str, Sequence[tuple[str, Any]]] | None = None
    ) -> list[str]:
        """Own the unfinished runs found in the store at start (recovering the interrupted
        ones), with the signals each one's log holds (``signals`` by run id, in order); returns
        the ids resumed."""
        ...

    async def recover_interrupted(self, run: Run) -> Run | None:
        """Queue an interrupted run again as a new attempt (or fail it); the queued run, or
        None."""
        ...

    async def worker_lost(self, run: Run, reason: str) -> Run | None:
        """Record that the process that ran ``run`` stopped (``interrupted``)."""
        ...

    async def cancel_in_store(self, run_id: str, reason: str) -> CancelAnswer:
        """Cancel a run nobody executes, by its stored state alone."""
        ...

    async def cancel(self, run_id: str, reason: str) -> bool:
        """See ``App.cancel``."""
        ...

    #: The most signals a run may hold (sent, not yet taken), of all names (``App``'s).
    max_pending_signals: int

    async def signal_here(self, run_id: str, name: str, data: Any) -> None:
        """Log a signal for a run this process owns and hand it over (or raise
        ``RunNotFound``/``RunFinished`` for a run it does not own)."""
        ...

    def deliver_signal(self, run_id: str, name: str, data: Any) -> None:
        """Hand a signal already logged to the run, if this process owns it."""
        ...

    def counts(self) -> tuple[int, int]:
        """``(queued, running)`` in this process."""
        ...

    def waiting_counts(self) -> tuple[int, int]:
        """``(scheduled, rate_limited)``: runs this process holds until their start time, and
        queued runs it holds until their rate allows."""
        ...


class Leases(Protocol):
    """Places under deployment-wide limits that a waiting parent lends (``Slots.lending``).

    A local queue has none (its process's ``Slots`` are the deployment's limits); a shared one
    keeps a task's ``concurrency`` across processes with places a run holds while it executes.
    """

    async def lend(self, run_id: str) -> None:
        """The run waits for its children: free its places for others meanwhile."""
        ...

    async def take_back(self, run_id: str) -> None:
        """Wait until the run holds its places again (ahead of runs not yet started). If
        cancelled, it takes them at once anyway (over the limit for a moment)."""
        ...

    def take_back_at_once(self, run_id: str) -> None:
        """Take the run's places back now, even over the limit (a waiting parent cancelled)."""
        ...


class WorkQueue(Leases, Protocol):
    """Where runs wait until a process takes them (see ``taskcast.queues``).

    The store holds runs and logs; the queue decides which process executes which run. A
    local queue hands every run this process submits (and the unfinished runs it finds at
    start) to this process; a shared queue lets any process of the deployment take it.
    """

    #: True when several processes take runs from this queue (workers on Redis): only the edges
    #: read it (the CLI and ``App`` refuse ``worker=False`` on a local queue), never the engine.
    shared: bool

    async def start(self, owner: QueueOwner, *, take: bool = True) -> list[str]:
        """Begin handing runs to ``owner`` (``take=False``: submit only, never execute).
        Returns the ids of the runs resumed at once."""
        ...

    def reserve(self, runs: Sequence[Run]) -> None:
        """Make room for ``runs``, about to be stored; raise ``QueueFull`` (no room) or
        ``InvalidRequest`` (a run this queue cannot take) and nothing is reserved."""
        ...

    def unreserve(self, runs: Sequence[Run]) -> None:
        """Give back room reserved for runs that were not stored."""
        ...

    def accept(self, run: Run) -> None:
        """``run`` was just stored (queued) by this process, in room reserved for it."""
        ...

    def room_freed(self) -> None:
        """This process can take more runs now."""
        ...

    # ``lend``, ``take_back`` and ``take_back_at_once``: see ``Leases``.

    async def cancel(self, run_id: str, reason: str) -> CancelAnswer:
        """Cancel a run this process does not hold: accepted if it will end ``cancelled``, or
        why not (unknown, or finished: with its state when the queue knows it)."""
        ...

    async def signal(self, run_id: str, name: str, data: Any) -> None:
        """Send a signal to a run, wherever it is held; ``TooManySignals`` when the run holds
        as many as it may."""
        ...

    def signal_taken(self, run_id: str, name: str) -> None:
        """A run this process holds took a signal of ``name``: it holds one fewer (a queue
        that counts signals across processes counts it; not awaited)."""
        ...

    async def stop_taking(self) -> None:
        """Take only the runs the engine still wants (``QueueOwner.room``: during the shutdown's
        grace period, children its running parents wait for); those held are kept."""
        ...

    async def hand_back(self, unfinished: Sequence[str]) -> None:
        """Make the unfinished runs this process holds available to others at once."""
        ...

    async def counts(self) -> QueueCounts:
        """Runs queued and running, for whoever shares this queue."""
        ...
