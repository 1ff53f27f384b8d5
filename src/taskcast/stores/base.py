"""The one interface every store implements; nothing above it knows which store it talks to.

A store keeps run records and their event logs. It is the single source of truth:

* it assigns each event its ``seq`` (1, 2, 3 ... per run, no gaps);
* it changes a run's state only along ``states.ALLOWED_TRANSITIONS``, as a compare-and-set, together
  with the event that announces the change, atomically; so two racing writers (a cancel and a
  completion) cannot both win;
* it tells its ``listener`` about every event once the event is durable, in ``seq`` order; the
  event log (``taskcast.log``) uses that to wake watchers.

A store persists every field of ``Run``, including the workflow ones (``parent_id``, ``after``,
``after_policy``), which never change after ``create_run``.

Every method returns once its write is durable (for SQLite: committed), except that ``append``
and ``transition`` called with ``durable=False`` may return as soon as the write is ordered (it
is committed shortly, in order, before any later durable write returns; a store may still wait
when it is far behind, so memory stays bounded). A caller cancelled while waiting never undoes a
write: stores hand it over before their first suspension.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Collection, Sequence
from typing import Any

from ..models import Event, Run, ScheduleState, compact_json, encode_json
from ..policies import Retention
from ..states import ALLOWED_TRANSITIONS, RunState
from ..stats import Activity, Window

EventListener = Callable[[Sequence[Event]], None]


#: Run fields a transition may set that a store keeps as JSON.
JSON_FIELDS = ("result", "error", "after")


def encode_transition(
    event_type: str, data: Any, fields: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """The event's data and the run's JSON ``fields`` as JSON, checked before a store changes
    anything: a transition that could not be written back fails alone (``NotSerializable``),
    it never reaches a writer that commits many runs' changes at once."""
    # The messages are only made for a value that fails: this runs for every transition.
    try:
        data_json = compact_json(data)
    except (TypeError, ValueError, RecursionError):
        encode_json(data, f"the data of the {event_type!r} event")  # raises NotSerializable
        raise
    encoded = {}
    for name, value in fields.items():
        if name in JSON_FIELDS:
            try:
                encoded[name] = "null" if value is None else compact_json(value)
            except (TypeError, ValueError, RecursionError):
                encode_json(value, f"the {name} of the run")  # raises NotSerializable
                raise
    return data_json, encoded


def apply_transition(
    run: Run, target: RunState, event_type: str, data: Any, fields: dict[str, Any]
) -> str | None:
    """The compare-and-set of a store that keeps its runs' states in memory: ``None`` (nothing
    changed) when ``run`` may not move to ``target``; else ``run`` moved, with ``fields`` set,
    and the event's data as JSON is returned. Raises ``NotSerializable`` before changing
    anything (see ``encode_transition``)."""
    if target not in ALLOWED_TRANSITIONS[run.state]:  # states.can_transition, without a call
        return None
    data_json, _ = encode_transition(event_type, data, fields)
    run.state = target
    for name, value in fields.items():
        setattr(run, name, value)
    return data_json


class Store(abc.ABC):
    """Durable home of runs and their event logs (see the module docstring for the contract)."""

    #: The URL this store was opened from, for messages.
    url: str

    #: How long finished runs are kept when the App says nothing (``App(retention=...)``).
    default_retention = Retention(age=7 * 86400.0)

    #: Stores shared by several processes: announce other processes' events from ``open`` on
    #: (True), or only once something reads a log (``follow_events``): a worker serving no
    #: watchers sets False.
    follow_events_at_open: bool = True

    def __init__(self) -> None:
        self._listener: EventListener | None = None
        self._reconnected: list[Callable[[], None]] = []

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever announcements may have been missed (a shared store whose
        subscription broke and is back): readers should re-read the store. Local stores never
        miss an announcement, so they never call it."""
        self._reconnected.append(callback)

    def _announce_reconnected(self) -> None:
        for callback in self._reconnected:
            callback()

    def set_listener(self, listener: EventListener | None) -> None:
        """Call ``listener(events)`` with each batch of newly durable events, in ``seq`` order."""
        self._listener = listener

    def _announce(self, events: Sequence[Event]) -> None:
        if self._listener is not None and events:
            self._listener(events)

    @abc.abstractmethod
    async def open(self) -> None:
        """Open (creating if needed) the store. Raises ``StoreError`` if it cannot be used."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release every resource. Idempotent."""

    async def flush(self) -> None:  # noqa: B027  (a no-op by default, on purpose)
        """Return once every write made so far is durable (and announced to the listener).

        Stores whose writes are durable when they return have nothing to wait for.
        """

    @abc.abstractmethod
    async def create_run(
        self, run: Run, data: dict[str, Any], *, fresh_id: bool = False
    ) -> tuple[Run, Event | None]:
        """Insert ``run`` with its first event, ``queued`` (``data``), atomically.

        The store takes ``run`` over (the caller must not touch it afterwards); the returned
        ``Run`` is a snapshot the caller may keep but must not change (it may be shared with the
        store's own view), like the one ``transition`` returns.

        If a run with the same id exists (an idempotent re-submit), nothing is written and the
        stored run is returned with ``None`` for the event. ``fresh_id=True`` promises the id was
        just generated, so the store may skip that look-up.
        """

    async def create_runs(self, runs: Sequence[Run], data: dict[str, Any]) -> list[Run]:
        """Insert several runs with fresh ids, each with its ``queued`` event (``data``).

        Like ``create_run(run, data, fresh_id=True)`` for each, but a store may write them all at
        once (SQLite: one commit). Returns the stored runs, in order.
        """
        stored = []
        for run in runs:
            created, _ = await self.create_run(run, data, fresh_id=True)
            stored.append(created)
        return stored

    @abc.abstractmethod
    async def append(
        self, run_id: str, type: str, data: Any, data_json: str, *, durable: bool = True
    ) -> Event:
        """Append one event to the log of a run that has not finished.

        Raises ``RunNotFound`` for an unknown run and ``RunFinished`` once the run is terminal.
        """

    async def append_many(
        self, run_id: str, entries: Sequence[tuple[str, Any, str]], *, durable: bool = True
    ) -> list[Event]:
        """Append events ``(type, data, data_json)`` to one run's log, in order: what as many
        ``append`` calls would do (each is handed over before the first suspension, the first
        error is raised once all are done). Stores that can write them as one do."""
        if len(entries) == 1:
            type, data, data_json = entries[0]
            return [await self.append(run_id, type, data, data_json, durable=durable)]
        outcomes = await asyncio.gather(
            *(self.append(run_id, t, d, j, durable=durable) for t, d, j in entries),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return outcomes  # type: ignore[return-value]  # no exception among them

    @abc.abstractmethod
    async def transition(
        self,
        run_id: str,
        target: RunState,
        event_type: str,
        data: Any,
        *,
        durable: bool = True,
        **fields: Any,
    ) -> tuple[Run, Event] | None:
        """Move the run to ``target`` and append ``event_type`` (``data``), atomically.

        ``fields`` are other ``Run`` attributes to set with it (``attempt``, ``result``...).
        Returns the updated run (a snapshot not to be changed; for a terminal ``target`` it may
        be the store's own record, since a finished run never changes) and the event, or ``None``
        (nothing written) when the run's current state may not move to ``target``, e.g. because
        another writer already finished it. Raises ``RunNotFound`` for an unknown run.
        """

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> Run | None:
        """The run as stored, or ``None``."""

    @abc.abstractmethod
    async def list_runs(
        self,
        *,
        state: RunState | None = None,
        task: str | None = None,
        limit: int = 100,
        before: str | None = None,
        parent: str | None = None,
        prefix: str | None = None,
    ) -> list[Run]:
        """Runs newest first, optionally filtered, with ids below ``before`` (for paging).

        ``parent``: only the children of that run (``Run.parent_id``), which a store should
        answer from an index: the coordinator uses it to find a parent's children on recovery.
        ``prefix``: only runs whose id starts with it (one range of ids: a store reads no other).
        """

    @abc.abstractmethod
    async def count_runs(self) -> dict[tuple[str, RunState], int]:
        """How many runs there are, by ``(task, state)``."""

    @abc.abstractmethod
    async def read_events(self, run_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        """Up to ``limit`` events of the run with ``seq > after``, in order."""

    async def read_events_of_type(
        self, run_id: str, type: str, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """Up to ``limit`` events of the run of one ``type`` with ``seq > after``, in order (a
        durable run's ``step`` records). A store that can filter where the log lives does."""
        found: list[Event] = []
        while len(found) < limit:
            page = await self.read_events(run_id, after, 1000)
            found.extend(event for event in page if event.type == type)
            if len(page) < 1000:
                break
            after = page[-1].seq
        return found[:limit]

    @abc.abstractmethod
    async def unfinished_runs(self) -> list[Run]:
        """Every run that is queued, running or interrupted, oldest first (for recovery)."""

    @abc.abstractmethod
    async def prune(self, finished_before: float) -> int:
        """Delete finished runs (and their logs) that finished before that Unix time.

        Returns how many runs were deleted. Unfinished runs are never pruned.
        """

    @abc.abstractmethod
    async def prune_task(
        self,
        task: str,
        *,
        finished_before: float | None = None,
        keep: int | None = None,
        spare: Collection[str] = (),
        limit: int = 1000,
    ) -> int:
        """Delete, with their logs, up to ``limit`` finished runs of ``task``, oldest finished
        first: those that finished before ``finished_before`` (Unix time), and those beyond the
        ``keep`` newest. Runs in ``spare`` are kept (a dependent still waits for them).

        Returns how many were deleted: a full ``limit`` means there may be more. Unfinished
        runs are never pruned. A store keeps the finished runs of each task in finish order
        (SQLite: an index on ``(task, finished_at)``), so a call costs what it deletes.
        """

    # -- schedules ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def schedule_state(self, name: str) -> ScheduleState:
        """What the store keeps of the schedule ``name`` (an empty state if nothing yet)."""

    @abc.abstractmethod
    async def set_schedule_paused(self, name: str, paused: bool) -> None:
        """Pause (True) or resume (False) the schedule ``name``, for every process."""

    @abc.abstractmethod
    async def record_tick(self, name: str, tick: float | None, run_id: str) -> None:
        """Record that ``run_id`` was started for the schedule ``name``: at ``tick`` (kept only
        if it is later than the tick recorded, so racing processes agree), or out of turn
        (``tick=None``: a trigger, which changes only the last run).
        """

    # -- health and announcements ------------------------------------------------------------

    async def problem(self) -> str | None:
        """Why the store cannot be used right now (for ``/health``), or None when it can."""
        return None

    async def follow_events(self) -> None:
        """Make sure this store announces events that other processes write (a shared store
        opened with ``follow_events_at_open = False`` subscribes now). Local stores: nothing."""
        return None

    # -- activity over time ------------------------------------------------------------------------

    @abc.abstractmethod
    async def activity(self, window: Window) -> Activity:
        """Runs created, started and finished per bucket of ``window``, queued and running at
        the end of each, and durations per task (the definitions are ``taskcast.stats``'s).

        Reads only the runs that finished at or after ``window.start`` (by finish time, from an
        index) and the unfinished ones: its cost follows the window's runs, not the store's.
        """
