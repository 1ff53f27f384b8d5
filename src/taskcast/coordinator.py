"""The coordinator: queues runs, starts them within the limits, and writes their lifecycle.

Every run this process owns is an ``ActiveRun`` in one of four phases:

    BLOCKED  (queued, waiting for the runs it was submitted ``after``)
    WAITING  (queued: in a per-task FIFO, or sleeping out a retry backoff)
    STARTING (its asyncio task exists but has not had its first turn yet)
    RUNNING  (its asyncio task is executing the body)
    RESCHEDULING (the attempt failed; its `retrying` write is on its way, then back to WAITING)
    FINISHING(the body is over; the terminal write is on its way)
    DONE     (nothing left to do; dropped)

A cancel acts by phase: a WAITING run is finished as ``cancelled`` on the spot; a STARTING run is
marked, and its task records ``cancelled`` instead of starting (throwing into a coroutine that has
not started would skip all of its handlers), and so is a RESCHEDULING one, which is then
cancelled instead of queued again; a RUNNING run gets
``CancelledError`` thrown into its body, so its ``finally`` blocks run, and the coordinator then
records ``cancelled``; FINISHING and DONE runs are past cancelling (``cancel`` returns False).
Whatever the body does with the CancelledError (re-raise, swallow and return, raise something
else), a requested cancel ends as ``cancelled``. A body that ignores cancellation outright is
recorded ``cancelled`` after ``cancel_timeout`` anyway and reported by ``shutdown``.

Workflows (see docs/semantics.md, "Workflows"): a run's children are runs like any other, submitted
with its ``parent_id``; the body's exit (however it exits) cancels the children still unfinished
and waits for them, so no child outlives its parent's attempt. A parent that waits for a child
*lends* its concurrency slots (global and per-task) while it waits and takes one back, ahead of
every queued run, before it continues: a waiting parent never holds the slot its children need.
A BLOCKED run becomes WAITING once every run it waits for has ended (the coordinator learns it
from the committed terminal events), or fails naming the one that did not complete.

With a shared store (Redis, ``Store.shared``) the queue lives in the store: ``submit`` only
stores the run, and a ``QueueConsumer`` (``consumer.py``) takes runs from the store while this
process has free slots and hands them to ``adopt``; a cancel or signal for a run held by another
process goes through the store. Everything from WAITING on is the same.

The terminal write is never lost to a cancel: stores hand a write over before their first
suspension, so a ``CancelledError`` can only interrupt the *wait* for the commit, never the write.
The store's compare-and-set makes the first terminal write the only one. A run's task does not
wait for its terminal commit (``durable=False``): the write is ordered, so nothing sees the run
finished before it is committed (``wait``, watchers and dependents learn of endings from the
store's committed events), and the store commits what it holds before it closes; not waiting
spares every run a suspension and lets the next run start while the batch commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .consumer import QueueConsumer
from .context import Context
from .dependencies import AFTER_POLICIES, check_dependencies, dependency_error
from .errors import (
    InvalidArguments,
    InvalidRequest,
    NotSerializable,
    QueueFull,
    RunFinished,
    RunNotFound,
    ShuttingDown,
    TooManySignals,
    UnknownTask,
)
from .ids import is_run_id, new_run_id
from .limits import MAX_PENDING_SIGNALS, MAX_PENDING_SIGNALS_PER_RUN, MAX_REASON, check_timeout
from .log import EventLog
from .models import Event, Run, lone_surrogate, text
from .resources import Resources
from .states import TERMINAL_EVENT_TYPES, RunState
from .stores.base import Store, encode_json
from .supervisor import Supervisor
from .tasks import TaskDefinition

logger = logging.getLogger("taskcast")


class Phase(Enum):
    BLOCKED = "blocked"
    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    RESCHEDULING = "rescheduling"
    FINISHING = "finishing"
    DONE = "done"


class StopKind(Enum):
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


class ActiveRun:
    """A run this coordinator owns until it finishes (see the module docstring)."""

    __slots__ = (
        "body_over",
        "children",
        "deadline",
        "deadline_cap",
        "definition",
        "dependency_failures",
        "holds_slot",
        "lent",
        "order",
        "phase",
        "run",
        "signal_waiters",
        "signals",
        "signals_held",
        "signals_sending",
        "stop",
        "stop_reason",
        "task",
        "timer",
        "waiting_for",
        "waits",
    )

    def __init__(self, run: Run, definition: TaskDefinition) -> None:
        self.run = run
        self.definition = definition
        self.phase = Phase.WAITING
        self.holds_slot = False
        # Unfinished children (ids), cancelled when the body exits. The workflow containers
        # are made on first use: most runs never need them, and fewer allocations per run
        # means fewer garbage collections.
        self.children: set[str] | None = None
        self.body_over = False  # the current attempt's body has exited: no more children
        self.waits = 0  # waits for children under way (lending_slot)
        self.lent = False  # the slot is lent while they last
        # The parent's deadline (event loop time): no attempt of this run may outlive it.
        self.deadline_cap: float | None = None
        self.deadline: float | None = None  # of the current attempt (event loop time)
        # Dependencies (``after``) not ended yet, and those that ended without completing.
        self.waiting_for: set[str] | None = None
        self.dependency_failures: list[tuple[str, dict[str, Any]]] | None = None
        self.order = 0
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.stop: StopKind | None = None
        self.stop_reason = ""
        self.signals: dict[str, deque[Any]] = {}
        self.signal_waiters: dict[str, deque[asyncio.Future[Any]]] = {}
        # Signals held for the task: kept in ``signals`` or being logged (``signals_sending``
        # by name), so that concurrent sends cannot overshoot the caps between check and keep.
        self.signals_held = 0
        self.signals_sending: dict[str, int] | None = None

    def deliver_signal(self, name: str, data: Any) -> None:
        for waiter in self.signal_waiters.get(name, ()):
            if not waiter.done():
                waiter.set_result(data)
                return
        self.keep_signal(name, data)

    def keep_signal(self, name: str, data: Any, *, first: bool = False) -> None:
        """Hold ``data`` for the next ``ctx.signal(name)`` (``first``: before the others)."""
        pending = self.signals.setdefault(name, deque())
        if first:
            pending.appendleft(data)
        else:
            pending.append(data)
        self.signals_held += 1

    def take_signal(self, name: str) -> tuple[bool, Any]:
        """``(True, data)`` of the oldest signal ``name`` held, or ``(False, None)``."""
        pending = self.signals.get(name)
        if not pending:
            return False, None
        self.signals_held -= 1
        return True, pending.popleft()

    def hold_signal(self, run_id: str, name: str, most: int) -> None:
        """Count a signal about to be logged as held, or raise ``TooManySignals`` when the run
        holds ``MAX_PENDING_SIGNALS`` of that name or ``most`` in all. Checked and counted
        before the write's await, so concurrent sends cannot overshoot."""
        sending = self.signals_sending
        if sending is None:
            sending = self.signals_sending = {}
        if len(self.signals.get(name, ())) + sending.get(name, 0) >= MAX_PENDING_SIGNALS:
            raise TooManySignals(run_id, MAX_PENDING_SIGNALS, name)
        if self.signals_held >= most:
            raise TooManySignals(run_id, most)
        sending[name] = sending.get(name, 0) + 1
        self.signals_held += 1

    def release_signal(self, name: str) -> None:
        """Undo ``hold_signal`` once the signal is logged (and handed over) or failed."""
        assert self.signals_sending is not None
        left = self.signals_sending[name] - 1
        if left:
            self.signals_sending[name] = left
        else:
            del self.signals_sending[name]
        self.signals_held -= 1


@dataclass
class ShutdownReport:
    """What ``shutdown`` did with each run it found unfinished.

    ``finished``: ended on their own during the grace period. ``interrupted``: cancelled after the
    grace period, cleaned up, persisted as ``interrupted`` (resumed on the next start).
    ``stuck``: ignored cancellation for the whole timeout; persisted as ``interrupted`` anyway.
    ``queued``: never started; they stay queued in the store.
    """

    finished: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def unfinished(self) -> list[str]:
        """Every run that did not reach a terminal state."""
        return [*self.interrupted, *self.stuck, *self.queued]

    @property
    def clean(self) -> bool:
        """True when no task ignored cancellation (nothing of ours is left on the loop)."""
        return not self.stuck

    def __str__(self) -> str:
        return (
            f"shutdown in {self.duration:.2f}s: {len(self.finished)} finished during grace,"
            f" {len(self.interrupted)} interrupted, {len(self.stuck)} stuck,"
            f" {len(self.queued)} left queued"
        )


def _error(exc: BaseException) -> dict[str, Any]:
    # ``text``: an exception's message may hold anything, and it is stored and listed.
    return {"type": type(exc).__name__, "message": text(str(exc)) or type(exc).__name__}


def _event_error(event: Event) -> dict[str, Any] | None:
    """The ``{"type", "message"}`` error a terminal event carries (None for ``completed``)."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "cancelled":
        return {"type": "Cancelled", "message": str(data.get("reason", "cancelled"))}
    error = data.get("error")
    return error if isinstance(error, dict) else None


class Coordinator:
    """Owns the queue, the limits and the lifecycle of runs; see the module docstring."""

    def __init__(
        self,
        store: Store,
        log: EventLog,
        tasks: Mapping[str, TaskDefinition],
        *,
        max_concurrency: int,
        max_queue: int,
        cancel_timeout: float,
        max_pending_signals: int = MAX_PENDING_SIGNALS_PER_RUN,
        resources: Resources | None = None,
        consume: bool = True,
    ) -> None:
        self.store = store
        self.log = log
        self.resources = resources if resources is not None else Resources()
        self._tasks = tasks
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.cancel_timeout = cancel_timeout
        self.max_pending_signals = max_pending_signals
        self._active: dict[str, ActiveRun] = {}
        self._ready: dict[str, deque[ActiveRun]] = {}
        self._order = itertools.count()
        self._supervisor = Supervisor()
        self.queued_count = 0
        self.running_count = 0
        self._running_by_task: Counter[str] = Counter()
        self._accepting = False
        self._grace_over = False
        self._report: ShutdownReport | None = None
        self._shutting_down: asyncio.Future[ShutdownReport] | None = None
        self._stopping_callbacks: set[Callable[[], None]] = set()
        # Runs somebody awaits the end of (a parent its children): resolved with the terminal
        # event, or ``shutdown``, as soon as it is committed.
        self._endings: dict[str, asyncio.Future[Event]] = {}
        # Dependency id -> the BLOCKED runs waiting for it.
        self._blocked: dict[str, list[ActiveRun]] = {}
        # Parents waiting to take a slot back, served before any queued run.
        self._reclaiming: deque[tuple[ActiveRun, asyncio.Future[None]]] = deque()
        log.add_listener(self._on_committed)
        # Shared stores: the consumer taking runs from the store's queue (None: API node only).
        self._consume = consume
        self._consumer: QueueConsumer | None = None

    # -- visible state -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

    def when_stopping(self, callback: Callable[[], None]) -> Callable[[], None]:
        """See ``App.when_stopping``."""
        if self._shutting_down is not None:
            callback()
            return lambda: None
        self._stopping_callbacks.add(callback)
        return lambda: self._stopping_callbacks.discard(callback)

    def stats(self) -> dict[str, int]:
        """Counts at a glance: queued, running, watchers, tasks owned."""
        return {
            "queued": self.queued_count,
            "running": self.running_count,
            "watchers": self.log.watcher_count,
            "tasks": self._supervisor.active_count,
        }

    # -- starting ----------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Resume the store's unfinished runs, then accept work. Returns the resumed run ids.

        A run that was running when its process stopped (``interrupted``, or ``running`` after a
        crash) is queued again as a new attempt if it has attempts left, else it fails with a
        reason saying so. Runs of tasks this app does not register are left as they are.

        With a shared store nothing is resumed here: the consumer takes over the runs of dead
        workers once their visibility timeout expires (see ``consumer.py``).
        """
        if self.store.shared:
            self.store.max_queued = self.max_queue
            self._accepting = True
            if self._consume:
                self._consumer = QueueConsumer(self)
                self._consumer.start(self._supervisor)
            return []
        resumed = []
        unfinished = await self.store.unfinished_runs()
        unfinished_ids = {run.id for run in unfinished}
        orphans = []
        for run in unfinished:
            definition = self._tasks.get(run.task)
            if definition is None:
                logger.warning(
                    "run %s of unregistered task %r left %s", run.id, run.task, run.state
                )
                continue
            if run.state in (RunState.RUNNING, RunState.INTERRUPTED):
                recovered = await self._recover_interrupted(run)
                if recovered is None:
                    continue
                run = recovered
            self.queued_count += 1
            active = ActiveRun(run, definition)
            if run.after:
                self._watch_dependencies(active)
                self._active[run.id] = active
                active.phase = Phase.BLOCKED
                await self._check_ended_dependencies(active, run.after)
                self._unblock_if_ready(active)
            else:
                self._enqueue(active)
            resumed.append(run.id)
            parent = self._active.get(run.parent_id) if run.parent_id else None
            if parent is not None:
                self.adopt(parent, run.id)
            elif run.parent_id is not None and run.parent_id not in unfinished_ids:
                orphans.append(run)
        for run in orphans:  # their parent ended (a crash between its end and theirs)
            await self.cancel(run.id, f"its parent {run.parent_id} already finished")
        self._accepting = True
        self._dispatch()
        return resumed

    async def _recover_interrupted(self, run: Run) -> Run | None:
        error = {
            "type": "Interrupted",
            "message": f"the process stopped during attempt {run.attempt} of {run.max_attempts}",
        }
        if run.attempt < run.max_attempts:
            moved = await self.store.transition(
                run.id,
                RunState.QUEUED,
                "retrying",
                {"attempt": run.attempt + 1, "delay": 0.0, "error": error},
                not_before=None,
                error=error,
            )
            return None if moved is None else moved[0]
        error["message"] += " and no attempts are left"
        await self.store.transition(
            run.id,
            RunState.FAILED,
            "failed",
            {"error": error},
            error=error,
            finished_at=time.time(),
        )
        return None

    # -- submitting --------------------------------------------------------------------------

    async def submit(
        self,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        *,
        run_id: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        after: Sequence[str] | None = None,
        after_policy: str = "fail",
        retry_of: str | None = None,
    ) -> Run:
        """Validate, store and queue a run; see ``App.submit_with`` for the contract.
        ``retry_of``: the id of the run this one retries (``App.retry``)."""
        run, _ = await self._submit(
            definition,
            args,
            run_id=run_id,
            timeout=timeout,
            max_attempts=max_attempts,
            after=after,
            after_policy=after_policy,
            retry_of=retry_of,
        )
        return run

    async def submit_child(
        self,
        parent: ActiveRun,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        run_id: str | None,
        *,
        fresh: bool = False,
    ) -> tuple[Run, asyncio.Future[Event] | None]:
        """Submit a child of the running ``parent`` (``ctx.spawn``). Returns the run and, if it
        was created, the future of its end (``None``: ``run_id`` existed, and that run is
        returned as it is).

        The child gets the parent's id as ``parent_id`` and its deadline as a cap, and counts
        among the parent's children, cancelled when the parent's body exits. ``fresh``: the
        caller promises no run has ``run_id`` (the store may skip the look-up).
        """
        return await self.child_submitted(
            self.start_child(parent, definition, args, run_id, fresh=fresh)
        )

    def start_child(
        self,
        parent: ActiveRun,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        run_id: str | None,
        *,
        fresh: bool = False,
    ) -> asyncio.Task[tuple[Run, asyncio.Future[Event] | None] | Exception]:
        """Begin ``submit_child`` and return its task at once (several children can then be
        stored together); ``child_submitted(task)`` gives its outcome."""
        if not self._accepting and not self._in_grace:
            raise ShuttingDown("taskcast is shutting down and starts no new runs")
        if parent.phase is not Phase.RUNNING or parent.body_over:
            raise InvalidRequest(f"run {parent.run.id} is not running and cannot spawn children")
        # Owned by the supervisor and awaited shielded: a parent cancelled while the store
        # takes the child cannot leave it stored but never queued; it is queued, then cancelled
        # as the orphan of a body that is over (see ``_submit``).
        return self._supervisor.spawn(
            self._submit_owned(definition, args, run_id, parent, fresh or run_id is None),
            name=f"taskcast spawn from {parent.run.id}",
        )

    @staticmethod
    async def child_submitted(
        creating: asyncio.Task[tuple[Run, asyncio.Future[Event] | None] | Exception],
    ) -> tuple[Run, asyncio.Future[Event] | None]:
        """The outcome of ``start_child``: see ``submit_child``; raises what submitting raised."""
        outcome = await asyncio.shield(creating)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _submit_owned(
        self,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        run_id: str | None,
        parent: ActiveRun,
        fresh_id: bool,
    ) -> tuple[Run, asyncio.Future[Event] | None] | Exception:
        try:
            run, created = await self._submit(
                definition, args, run_id=run_id, parent=parent, fresh_id=fresh_id
            )
        except Exception as exc:  # the caller raises it (the supervisor would log it)
            return exc
        if not created:
            return run, None
        # Taken now, in the step that adopted it: the child may end before the caller resumes.
        return run, self._endings.get(run.id) or await self.watch_end(run.id)

    def definition(self, task: str) -> TaskDefinition:
        """The registered task ``task``, or ``UnknownTask``."""
        try:
            return self._tasks[task]
        except KeyError:
            raise UnknownTask(task, list(self._tasks)) from None

    async def announce_child(self, parent: ActiveRun, child: Run) -> None:
        """Append the ``child`` event to the parent's log."""
        data = {"run_id": child.id, "task": child.task}
        await self.store.append(
            parent.run.id, "child", data, encode_json(data, "child"), durable=False
        )

    async def _submit(
        self,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        *,
        run_id: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        after: Sequence[str] | None = None,
        after_policy: str = "fail",
        parent: ActiveRun | None = None,
        fresh_id: bool | None = None,
        retry_of: str | None = None,
    ) -> tuple[Run, bool]:
        self._check_submit_options(timeout, max_attempts, child=parent is not None)
        if run_id is not None and not is_run_id(run_id):
            raise InvalidRequest(
                "id must be a string of 1 to 128 letters, digits and ._~:- (it goes in URLs and"
                f" headers), got {run_id!r}"
            )
        if after_policy not in AFTER_POLICIES:
            raise InvalidRequest(
                f"after_policy must be one of {', '.join(AFTER_POLICIES)}, got {after_policy!r}"
            )
        if isinstance(after, str) or (after and not all(is_run_id(dep) for dep in after)):
            raise InvalidRequest(f"after must be a list of run ids, got {after!r}")
        dependencies = list(dict.fromkeys(after)) if after else []  # no duplicates, in order
        stored_args = self._stored_arguments(definition, args)
        if self.queued_count >= self.max_queue and not self.store.shared:
            raise QueueFull(self.max_queue, retry_after=1.0)
        run = self._new_run(definition, stored_args, timeout, max_attempts, run_id)
        if parent is not None:
            run.parent_id = parent.run.id
        if dependencies:
            run.after = dependencies
        if after_policy != run.after_policy:
            run.after_policy = after_policy
        run.retry_of = retry_of
        if self.store.shared:  # the store queues it (and bounds the queue); a worker takes it
            if parent is not None or dependencies:
                raise InvalidRequest(
                    f"child runs and after= dependencies need a memory:// or sqlite:// store;"
                    f" {self.store.url!r} is shared by several processes, which workflows do"
                    " not support yet"
                )
            stored, event = await self.store.create_run(
                run, {"task": run.task}, fresh_id=run_id is None
            )
            if self._consumer is not None:  # a task registered after start: look at its queue
                await self._consumer.notice_task(run.task)
            return stored, event is not None
        active = ActiveRun(run, definition)
        self.queued_count += 1  # reserve the place before waiting for the store
        # Watch the dependencies before reading them: an end committed meanwhile is not missed.
        self._watch_dependencies(active)
        try:
            if dependencies:
                ended = await check_dependencies(self.store, run.id, dependencies)
                for dependency in ended:
                    self._dependency_ended(active, dependency.id, dependency.state, dependency)
            stored, event = await self.store.create_run(
                run, {"task": run.task}, fresh_id=run_id is None if fresh_id is None else fresh_id
            )
        except asyncio.CancelledError:
            # Cancelled while waiting for the commit. Stores never undo a write they were handed
            # before the cancel: if the run is stored, it must be queued all the same, or it would
            # sit unowned in the store until the next start.
            created_at = run.created_at
            found = await self.store.get_run(run.id)
            if (
                found is not None
                and found.created_at == created_at
                and found.id not in self._active
            ):
                self._queue_stored(active, found, parent)
            else:
                self.queued_count -= 1
                self._unwatch_dependencies(active)
            raise
        except BaseException:
            self.queued_count -= 1
            self._unwatch_dependencies(active)
            raise
        if event is None:  # the id existed: an idempotent re-submit
            self.queued_count -= 1
            self._unwatch_dependencies(active)
            return stored, False
        self._queue_stored(active, stored, parent)
        if parent is not None and parent.body_over:  # the parent ended while we stored it
            await self.cancel(stored.id, f"its parent {parent.run.id} ended before it started")
        return stored, True

    def _queue_stored(self, active: ActiveRun, stored: Run, parent: ActiveRun | None) -> None:
        """Own a run just stored: queue it, or block it until its dependencies end."""
        active.run = stored
        if parent is not None:
            active.deadline_cap = parent.deadline
            self.adopt(parent, stored.id)
        if stored.after:
            self._active[stored.id] = active
            active.phase = Phase.BLOCKED
            self._unblock_if_ready(active)
        else:
            self._enqueue(active)

    async def submit_many(
        self,
        definition: TaskDefinition,
        many_args: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
    ) -> list[Run]:
        """Validate, store and queue several runs at once; see ``App.submit_many``."""
        self._check_submit_options(timeout, max_attempts)
        stored_args = []
        for index, args in enumerate(many_args):
            try:
                stored_args.append(self._stored_arguments(definition, args))
            except InvalidArguments as exc:
                problems = [
                    {**problem, "param": f"[{index}].{problem['param']}"}
                    for problem in exc.details["problems"]
                ]
                raise InvalidArguments(definition.name, problems) from None
        if self.queued_count + len(stored_args) > self.max_queue and not self.store.shared:
            raise QueueFull(self.max_queue, retry_after=1.0)
        runs = [self._new_run(definition, args, timeout, max_attempts) for args in stored_args]
        if self.store.shared:  # the store queues them (see submit)
            stored = await self.store.create_runs(runs, {"task": definition.name})
            if self._consumer is not None:
                await self._consumer.notice_task(definition.name)
            return stored
        self.queued_count += len(runs)
        try:
            stored = await self.store.create_runs(runs, {"task": definition.name})
        except BaseException:
            self.queued_count -= len(runs)
            raise
        for run in stored:
            self._enqueue(ActiveRun(run, definition))
        return stored

    def _check_submit_options(
        self, timeout: float | None, max_attempts: int | None, *, child: bool = False
    ) -> None:
        # During the shutdown's grace period running parents may still spawn: their children
        # are part of the work that is finishing.
        if not self._accepting and not (child and self._in_grace):
            raise ShuttingDown("taskcast is shutting down (or not started) and takes no new runs")
        check_timeout(timeout)
        if max_attempts is not None and not (isinstance(max_attempts, int) and max_attempts >= 1):
            raise InvalidRequest(f"max_attempts must be an integer >= 1, got {max_attempts!r}")

    @staticmethod
    def _stored_arguments(definition: TaskDefinition, args: Mapping[str, Any]) -> dict[str, Any]:
        try:
            stored = definition.validate_arguments(dict(args))
        except ValueError as exc:  # pydantic could not render a value as JSON
            place = lone_surrogate(dict(args))
            problem = f"{place} holds a lone surrogate, which is not Unicode text" if place else exc
            raise NotSerializable(f"the arguments of {definition.name!r}: {problem}") from None
        # What the store could not read back (NaN, a lone surrogate...) is refused here, at the
        # door, not in the store's writer.
        encode_json(stored, f"the arguments of {definition.name!r}")
        return stored

    @staticmethod
    def _new_run(
        definition: TaskDefinition,
        args: dict[str, Any],
        timeout: float | None,
        max_attempts: int | None,
        run_id: str | None = None,
    ) -> Run:
        return Run(
            id=run_id or new_run_id(),
            task=definition.name,
            args=args,
            max_attempts=max_attempts or definition.max_attempts,
            timeout=timeout,
            created_at=time.time(),
        )

    # -- workflows: children -----------------------------------------------------------------

    def adopt(self, parent: ActiveRun, child_id: str) -> None:
        """Count ``child_id`` among ``parent``'s unfinished children until it ends."""
        children = parent.children
        if children is None:
            children = parent.children = set()
        elif child_id in children:
            return
        children.add(child_id)
        child = self._active.get(child_id)
        if child is not None and parent.deadline is not None:  # e.g. resumed after a restart
            cap = child.deadline_cap
            child.deadline_cap = parent.deadline if cap is None else min(cap, parent.deadline)
        ending = self._ending_future(child_id)
        ending.add_done_callback(lambda _: children.discard(child_id))

    def _ending_future(self, run_id: str) -> asyncio.Future[Event]:
        ending = self._endings.get(run_id)
        if ending is None:
            ending = self._endings[run_id] = asyncio.get_running_loop().create_future()
        return ending

    async def wait_for_end(self, run_id: str) -> Event:
        """Wait until the run ends and return its terminal event (or its ``shutdown`` event when
        the process stops first). Raises ``RunNotFound``. Cancelling the wait leaves the run be.
        """
        return await asyncio.shield(await self.watch_end(run_id))

    async def watch_end(self, run_id: str) -> asyncio.Future[Event]:
        """A future resolved with the run's terminal (or ``shutdown``) event; already resolved
        if the run has ended. Raises ``RunNotFound``."""
        ending = self._ending_future(run_id)
        if not ending.done():
            run = await self.store.get_run(run_id)
            if run is None:
                if self._endings.get(run_id) is ending and not ending.done():
                    del self._endings[run_id]
                raise RunNotFound(run_id)
            if run.is_finished and not ending.done():
                last = await self.store.read_events(run_id, after=run.last_seq - 1)
                if not ending.done():
                    ending.set_result(last[-1])
                    if self._endings.get(run_id) is ending:
                        del self._endings[run_id]
        return ending

    async def end_children(self, active: ActiveRun, reason: str) -> None:
        """Cancel the run's unfinished children and wait until each has ended (its cleanup ran).

        Bounded: a child that ignores its cancel is recorded ``cancelled`` after
        ``cancel_timeout``. Cancelling this wait stops waiting, not the cancellation.
        """
        children = list(active.children or ())
        if not children:
            return
        for child_id in children:
            await self.cancel(child_id, reason)
        endings = [self._endings[c] for c in children if c in self._endings]
        if endings:
            await asyncio.wait(endings)

    @contextlib.asynccontextmanager
    async def lending_slot(self, active: ActiveRun) -> AsyncIterator[None]:
        """While the body inside waits (for children), lend the run's slot to others.

        On the way out the run takes a slot back before it continues, ahead of queued runs (it
        may wait for one). If the wait is cancelled, the slot is taken back at once. Waits may
        overlap (``gather`` of two maps): the slot is lent from the first until the last ends.
        """
        active.waits += 1
        if active.waits == 1 and active.holds_slot:
            self._release_slot(active)
            active.lent = True
        try:
            yield
        except asyncio.CancelledError:
            # A cancelled waiter must not wait for a slot: take it back at once (possibly over
            # the limit for a moment). Usually the body is ending and frees it right away; if it
            # is the body's own timeout, the body goes on holding its slot as it should.
            if self._last_wait_over(active):
                self._retake_slot_at_once(active)
            raise
        except BaseException:
            if self._last_wait_over(active):
                await self._reclaim_slot(active)
            raise
        if self._last_wait_over(active):
            await self._reclaim_slot(active)

    @staticmethod
    def _last_wait_over(active: ActiveRun) -> bool:
        """Count a wait out; True when it was the last one and the slot is lent."""
        active.waits -= 1
        if active.waits or not active.lent:
            return False
        active.lent = False
        return True

    async def _reclaim_slot(self, active: ActiveRun) -> None:
        if active.holds_slot or active.stop is not None:
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reclaiming.append((active, granted))
        self._dispatch()
        try:
            await granted
        finally:
            if not granted.done():
                granted.cancel()  # _dispatch skips it

    def _retake_slot_at_once(self, active: ActiveRun) -> None:
        if not active.holds_slot:
            self._take_slot(active)

    def _take_slot(self, active: ActiveRun) -> None:
        self.running_count += 1
        self._running_by_task[active.definition.name] += 1
        active.holds_slot = True

    def _has_room(self, active: ActiveRun) -> bool:
        limit = active.definition.concurrency
        return self.running_count < self.max_concurrency and (
            limit is None or self._running_by_task[active.definition.name] < limit
        )

    def _serve_reclaimers(self) -> None:
        """Give freed slots back to waiting parents first, oldest request first."""
        if not self._reclaiming:
            return
        kept: deque[tuple[ActiveRun, asyncio.Future[None]]] = deque()
        while self._reclaiming:
            active, granted = self._reclaiming.popleft()
            if granted.done():
                continue  # given up on (cancelled)
            if self._has_room(active):
                self._take_slot(active)
                granted.set_result(None)
            else:
                kept.append((active, granted))
        self._reclaiming = kept

    # -- workflows: dependencies -------------------------------------------------------------

    def _watch_dependencies(self, active: ActiveRun) -> None:
        if not active.run.after:
            return
        active.waiting_for = set(active.run.after)
        for dependency in active.waiting_for:
            self._blocked.setdefault(dependency, []).append(active)

    def _unwatch_dependencies(self, active: ActiveRun) -> None:
        if not active.waiting_for:
            return
        for dependency in active.waiting_for:
            waiting = self._blocked.get(dependency)
            if waiting is not None and active in waiting:
                waiting.remove(active)
                if not waiting:
                    del self._blocked[dependency]
        active.waiting_for = None

    async def _check_ended_dependencies(self, active: ActiveRun, after: list[str]) -> None:
        """On recovery: note the dependencies that ended (or vanished) while we were away."""
        for dependency_id in after:
            dependency = await self.store.get_run(dependency_id)
            if dependency is None:  # pruned: it had ended, its outcome is gone
                self._dependency_ended(active, dependency_id, None, None)
            elif dependency.is_finished:
                self._dependency_ended(active, dependency_id, dependency.state, dependency)

    def _dependency_ended(
        self, active: ActiveRun, dependency_id: str, state: RunState | None, run: Run | None
    ) -> None:
        if active.waiting_for is None or dependency_id not in active.waiting_for:
            return
        active.waiting_for.discard(dependency_id)
        if state is not RunState.COMPLETED:
            error = run.error if run is not None else None
            if active.dependency_failures is None:
                active.dependency_failures = []
            active.dependency_failures.append(
                (dependency_id, dependency_error(dependency_id, state, error))
            )
        self._unblock_if_ready(active)

    def _unblock_if_ready(self, active: ActiveRun) -> None:
        if active.phase is not Phase.BLOCKED or active.waiting_for:
            return
        if active.dependency_failures and active.run.after_policy == "fail":
            if self._supervisor.closed:
                return  # stopped: it stays queued, and the next start fails it
            active.phase = Phase.DONE
            self.queued_count -= 1
            self._active.pop(active.run.id, None)
            dependency_id, error = active.dependency_failures[0]
            self._supervisor.spawn(
                self._finish(
                    active,
                    RunState.FAILED,
                    {"error": error, "dependency": dependency_id},
                    error=error,
                ),
                name=f"taskcast dependency failure {active.run.id}",
            )
            return
        self._enqueue(active)

    def _on_committed(self, events: Sequence[Event]) -> None:
        """The store committed ``events``: resolve who waits for the runs that ended.

        It runs inside the store's commit path, which must never fail: a bug here is logged.
        """
        if not self._endings and not self._blocked:
            return
        try:
            self._note_endings(events)
        except Exception:
            logger.exception("taskcast could not process the end of a run")

    def _note_endings(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.type in TERMINAL_EVENT_TYPES:
                waiting = self._blocked.pop(event.run_id, None)
                if waiting is not None:
                    state = RunState(event.type)
                    ended = Run(event.run_id, "", {}, state, error=_event_error(event))
                    for active in waiting:
                        self._dependency_ended(active, event.run_id, state, ended)
            elif event.type != "shutdown":
                continue
            ending = self._endings.pop(event.run_id, None)
            if ending is not None and not ending.done():
                ending.set_result(event)

    # -- queueing and dispatching ------------------------------------------------------------

    def room(self) -> dict[str, int]:
        """How many more runs of each task this process can take now (shared stores)."""
        free = self.max_concurrency - self.running_count - self.queued_count
        if free <= 0 or not self._accepting:
            return {}
        wanted = {}
        for name, definition in self._tasks.items():
            count = free
            if definition.concurrency is not None:
                waiting = len(self._ready.get(name, ()))
                count = min(count, definition.concurrency - self._running_by_task[name] - waiting)
            if count > 0:
                wanted[name] = count
        return wanted

    def take_over(self, run: Run, signals: list[tuple[str, Any]]) -> None:
        """Queue a run the consumer took from a shared store, with the signals it was sent
        before (in order)."""
        active = ActiveRun(run, self._tasks[run.task])
        for name, data in signals:
            active.deliver_signal(name, data)
        self.queued_count += 1
        self._enqueue(active)

    def deliver_signal(self, run_id: str, name: str, data: Any) -> None:
        """Hand a signal logged in a shared store to the run, if this process holds it."""
        active = self._active.get(run_id)
        if active is not None and active.phase not in (Phase.FINISHING, Phase.DONE):
            active.deliver_signal(name, data)

    def _enqueue(self, active: ActiveRun) -> None:
        """Make a WAITING run ready now, or after its ``not_before`` time (retry backoff)."""
        active.phase = Phase.WAITING
        self._active[active.run.id] = active
        delay = (active.run.not_before or 0.0) - time.time()
        if delay > 0:
            active.timer = asyncio.get_running_loop().call_later(delay, self._make_ready, active)
        else:
            self._make_ready(active)

    def _make_ready(self, active: ActiveRun) -> None:
        active.timer = None
        if active.phase is not Phase.WAITING:
            return
        active.order = next(self._order)
        self._ready.setdefault(active.definition.name, deque()).append(active)
        self._dispatch()

    def _dispatch(self) -> None:
        """Start ready runs, oldest first, while the global and per-task limits allow."""
        self._serve_reclaimers()
        if not self._accepting:
            if self._in_grace:
                self._dispatch_children()
            return
        while self.running_count < self.max_concurrency:
            chosen: deque[ActiveRun] | None = None
            for name, queue in self._ready.items():
                while queue and queue[0].phase is not Phase.WAITING:
                    queue.popleft()  # cancelled while it waited
                if not queue:
                    continue
                limit = queue[0].definition.concurrency
                if limit is not None and self._running_by_task[name] >= limit:
                    continue
                if chosen is None or queue[0].order < chosen[0].order:
                    chosen = queue
            if chosen is None:
                return
            self._start(chosen.popleft())

    @property
    def _in_grace(self) -> bool:
        """Shutting down, in the grace period: running runs may still finish their work."""
        return self._shutting_down is not None and not self._grace_over

    def _dispatch_children(self) -> None:
        """During the grace period, start only children of running parents (oldest first per
        task): the parents wait for them, so they are part of the work that is finishing."""
        for name, queue in self._ready.items():
            limit = queue[0].definition.concurrency if queue else None
            for active in list(queue):
                if self.running_count >= self.max_concurrency:
                    return
                if limit is not None and self._running_by_task[name] >= limit:
                    break
                if active.phase is not Phase.WAITING:
                    queue.remove(active)
                    continue
                parent = self._active.get(active.run.parent_id or "")
                if parent is not None and parent.phase is Phase.RUNNING and parent.stop is None:
                    queue.remove(active)
                    self._start(active)

    def _start(self, active: ActiveRun) -> None:
        self.queued_count -= 1
        self._take_slot(active)
        active.phase = Phase.STARTING
        active.task = self._supervisor.spawn(
            self._execute(active), name=f"taskcast run {active.run.id}"
        )

    # -- executing ---------------------------------------------------------------------------

    async def _execute(self, active: ActiveRun) -> None:
        try:
            if active.stop is None:
                await self._attempt(active)
            elif active.stop is StopKind.CANCEL:  # cancelled before its first turn
                active.phase = Phase.DONE
                await self._cancel_in_store(active.run.id, active.stop_reason)
            else:  # shutdown before its first turn: it never started, so it stays queued
                active.phase = Phase.WAITING
        finally:
            if active.stop is not None and active.timer is not None:
                active.timer.cancel()  # the cancel watchdog: the body did stop
                active.timer = None
            self._release_slot(active)
            if active.phase is Phase.DONE:
                self._active.pop(active.run.id, None)

    def _release_slot(self, active: ActiveRun) -> None:
        """Free the run's concurrency slot (once) and start what waits for it.

        Called as soon as the body is over: the slot limits bodies running at once, not the
        bookkeeping after them, so the next run need not wait for this one's terminal commit.
        """
        if not active.holds_slot:
            return
        active.holds_slot = False
        self.running_count -= 1
        self._running_by_task[active.definition.name] -= 1
        self._dispatch()
        if self._consumer is not None:
            self._consumer.wake()

    async def _attempt(self, active: ActiveRun) -> None:
        active.phase = Phase.RUNNING
        run = active.run
        definition = active.definition
        attempt = run.attempt + 1
        timeout = run.timeout if run.timeout is not None else definition.timeout
        loop = asyncio.get_running_loop()
        scope: asyncio.Timeout | None = None
        started_at = time.time()
        try:
            moved = await self.store.transition(
                run.id,
                RunState.RUNNING,
                "started",
                {
                    "attempt": attempt,
                    "waited": round(started_at - (run.not_before or run.created_at), 6),
                },
                attempt=attempt,
                started_at=started_at,
                not_before=None,
                durable=False,  # a crash before its commit leaves the run queued: it reruns
            )
            if moved is None:  # finished by someone else meanwhile
                active.phase = Phase.DONE
                return
            active.run = run = moved[0]
            cap = active.deadline_cap
            if timeout is None and cap is None:  # no scope at all: the common case stays cheap
                result = await self._invoke(active, None)
            else:
                deadline = loop.time() + timeout if timeout is not None else None
                if cap is not None and (deadline is None or cap < deadline):
                    # The parent's deadline comes first: it bounds this attempt.
                    deadline, timeout = cap, round(max(0.0, cap - loop.time()), 6)
                assert deadline is not None
                async with asyncio.timeout_at(deadline) as scope:
                    result = await self._invoke(active, deadline)
        except asyncio.CancelledError:
            active.phase = Phase.FINISHING
            self._release_slot(active)
            await self._finish_stopped(active, cleanup_error=None)
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            active.phase = Phase.FINISHING
            self._release_slot(active)
            error = _error(exc)
            # Durable: the process is on its way out, and the loop may not outlive this task.
            await self._finish(active, RunState.FAILED, {"error": error}, error=error, durable=True)
            raise
        except Exception as exc:
            active.phase = Phase.FINISHING
            self._release_slot(active)
            if active.stop is not None:
                await self._finish_stopped(active, cleanup_error=exc)
            elif scope is not None and scope.expired():
                await self._finish_timed_out(active, timeout)
            elif attempt < run.max_attempts and definition.retry.should_retry(exc):
                await self._retry(active, exc)
            else:
                await self._finish(
                    active, RunState.FAILED, {"error": _error(exc)}, error=_error(exc)
                )
        else:
            active.phase = Phase.FINISHING
            self._release_slot(active)
            if active.stop is not None:  # the body swallowed the CancelledError
                await self._finish_stopped(active, cleanup_error=None)
            elif scope is not None and scope.expired():
                await self._finish_timed_out(active, timeout)
            else:
                try:
                    if result is not None:
                        encode_json(result, f"the result of task {definition.name!r}")
                except NotSerializable as exc:
                    await self._finish(
                        active, RunState.FAILED, {"error": _error(exc)}, error=_error(exc)
                    )
                else:
                    await self._finish(
                        active, RunState.COMPLETED, {"result": result}, result=result
                    )

    async def _invoke(self, active: ActiveRun, deadline: float | None) -> Any:
        """Run the body; whichever way it exits, its unfinished children end before it does."""
        active.deadline = deadline
        context = Context(self, active, deadline)
        parent = active.run.id
        active.body_over = False
        active.waits, active.lent = 0, False
        try:
            result = await active.definition.invoke(context, active.run.args)
        except asyncio.CancelledError:
            active.body_over = True
            # A shutdown (or a cancel from outside taskcast) stops the children by itself and
            # they resume with the parent; a cancel or a timeout ends them here.
            if active.children:
                if active.stop is StopKind.CANCEL:
                    await self.end_children(active, f"its parent {parent} was cancelled")
                elif deadline is not None and asyncio.get_running_loop().time() >= deadline:
                    await self.end_children(active, f"its parent {parent} timed out")
            raise
        except BaseException:
            active.body_over = True
            if active.children:
                await self.end_children(active, f"its parent {parent} failed")
            raise
        active.body_over = True
        if active.children:
            await self.end_children(active, f"its parent {parent} finished without awaiting it")
        return result

    async def _finish(
        self,
        active: ActiveRun,
        state: RunState,
        data: dict[str, Any],
        *,
        durable: bool = False,
        **fields: Any,
    ) -> None:
        """Write the run's terminal state and event (once; see "never lost" above)."""
        active.phase = Phase.DONE
        now = time.time()
        if active.run.started_at is not None:
            data["duration"] = round(now - active.run.started_at, 6)
        await self.store.transition(
            active.run.id, state, state.value, data, finished_at=now, durable=durable, **fields
        )

    async def _finish_timed_out(self, active: ActiveRun, timeout: float | None) -> None:
        error = {"type": "TimedOut", "message": f"the run did not finish within {timeout:g} s"}
        await self._finish(
            active, RunState.TIMED_OUT, {"timeout": timeout, "error": error}, error=error
        )

    async def _finish_stopped(self, active: ActiveRun, cleanup_error: BaseException | None) -> None:
        """Record a run that was stopped on purpose: cancelled, or interrupted by shutdown."""
        data: dict[str, Any] = {"reason": active.stop_reason or "cancelled"}
        if cleanup_error is not None:
            data["cleanup_error"] = _error(cleanup_error)
        if active.stop is StopKind.CANCEL:
            error = {"type": "Cancelled", "message": data["reason"]}
            await self._finish(active, RunState.CANCELLED, data, error=error)
            return
        # Shutdown, or a cancellation from outside taskcast (the loop is being torn down).
        active.phase = Phase.DONE
        data.update(reason=active.stop_reason or "shutdown", state=RunState.INTERRUPTED.value)
        await self.store.transition(active.run.id, RunState.INTERRUPTED, "shutdown", data)

    async def _retry(self, active: ActiveRun, exc: BaseException) -> None:
        active.phase = Phase.RESCHEDULING
        run = active.run
        delay = active.definition.retry.delay(run.attempt)
        error = _error(exc)
        moved = await self.store.transition(
            run.id,
            RunState.QUEUED,
            "retrying",
            {"attempt": run.attempt + 1, "delay": round(delay, 6), "error": error},
            not_before=time.time() + delay,
            error=error,
        )
        if moved is None:
            active.phase = Phase.DONE
            return
        active.run = moved[0]
        if active.stop is StopKind.CANCEL:  # cancelled while the write was on its way
            active.phase = Phase.DONE
            await self._cancel_in_store(run.id, active.stop_reason)
            return
        self.queued_count += 1
        if active.stop is StopKind.SHUTDOWN:  # stays queued; shutdown lists it
            active.phase = Phase.WAITING
            return
        self._enqueue(active)

    # -- cancelling --------------------------------------------------------------------------

    async def cancel(self, run_id: str, reason: str) -> bool:
        """See ``App.cancel``."""
        if not isinstance(reason, str) or len(reason) > MAX_REASON or lone_surrogate(reason):
            raise InvalidRequest(
                f"reason must be text of at most {MAX_REASON} characters, got {reason!r:.80}"
            )
        active = self._active.get(run_id)
        if active is None:
            # Not owned here: unknown, finished, or (another app's) unfinished run in the store.
            if self.store.shared:  # maybe held by another worker: the store asks it
                return await self.store.request_cancel(run_id, reason)
            moved = await self._cancel_in_store(run_id, reason)
            return moved
        if active.phase in (Phase.WAITING, Phase.BLOCKED):
            self._unwatch_dependencies(active)
            active.phase = Phase.DONE
            if active.timer is not None:
                active.timer.cancel()
                active.timer = None
            self.queued_count -= 1
            self._active.pop(run_id, None)
            if self._consumer is not None:
                self._consumer.wake()
            return await self._cancel_in_store(run_id, reason)
        if active.phase in (Phase.STARTING, Phase.RESCHEDULING):
            if active.stop is None:
                active.stop, active.stop_reason = StopKind.CANCEL, reason
            return active.stop is StopKind.CANCEL
        if active.phase is Phase.RUNNING:
            if active.stop is None:
                active.stop, active.stop_reason = StopKind.CANCEL, reason
                assert active.task is not None
                active.task.cancel()
                # While RUNNING, `timer` is free (it holds retry backoffs only while WAITING).
                active.timer = asyncio.get_running_loop().call_later(
                    self.cancel_timeout, self._abandon_if_stuck, active
                )
            return active.stop is StopKind.CANCEL
        # FINISHING: the body ended and its terminal write is under way. A cancel that ended it
        # is still in progress (a second cancel is accepted too); anything else is a 409.
        return active.stop is StopKind.CANCEL

    async def _cancel_in_store(self, run_id: str, reason: str) -> bool:
        error = {"type": "Cancelled", "message": reason}
        try:
            moved = await self.store.transition(
                run_id,
                RunState.CANCELLED,
                "cancelled",
                {"reason": reason},
                error=error,
                finished_at=time.time(),
            )
        except RunNotFound:
            return False
        return moved is not None

    def _abandon_if_stuck(self, active: ActiveRun) -> None:
        """The body ignored cancellation for ``cancel_timeout``: record ``cancelled`` anyway."""
        active.timer = None
        if active.phase is not Phase.RUNNING or self._supervisor.closed:
            return
        logger.warning(
            "run %s ignored cancellation for %gs; recording it as cancelled",
            active.run.id,
            self.cancel_timeout,
        )
        active.phase = Phase.DONE
        data = {"reason": active.stop_reason, "abandoned": True}
        self._supervisor.spawn(
            self._finish(
                active,
                RunState.CANCELLED,
                data,
                error={"type": "Cancelled", "message": active.stop_reason},
            ),
            name=f"taskcast abandon {active.run.id}",
        )

    # -- signals -----------------------------------------------------------------------------

    async def signal(self, run_id: str, name: str, data: Any) -> None:
        """See ``App.signal``."""
        if not isinstance(name, str) or not name or len(name) > 64:
            raise InvalidRequest(
                f"signal name must be a string of 1 to 64 characters, got {name!r}"
            )
        if self.store.shared:
            # Whoever holds the run (this process or another) gets it from the log: the
            # consumer delivers logged signals (see consumer.py).
            payload = {"name": name, "data": data}
            await self.store.append(run_id, "signal", payload, encode_json(payload, "signal data"))
            return
        active = self._active.get(run_id)
        if active is None or active.phase in (Phase.FINISHING, Phase.DONE):
            run = await self.store.get_run(run_id)
            if run is None:
                raise RunNotFound(run_id)
            raise RunFinished(run_id, run.state)
        payload = {"name": name, "data": data}
        data_json = encode_json(payload, "signal data")
        active.hold_signal(run_id, name, self.max_pending_signals)
        try:
            await self.store.append(run_id, "signal", payload, data_json)
        finally:
            active.release_signal(name)
        active.deliver_signal(name, data)

    # -- shutting down -----------------------------------------------------------------------

    async def shutdown(self, grace: float, timeout: float) -> ShutdownReport:
        """See ``App.shutdown``. Safe to call twice: the second call waits for the first."""
        if self._shutting_down is not None:
            return await asyncio.shield(self._shutting_down)
        self._shutting_down = asyncio.get_running_loop().create_future()
        try:
            report = await self._shut_down(grace, timeout)
        except BaseException as exc:
            self._shutting_down.set_exception(exc)
            raise
        self._shutting_down.set_result(report)
        return report

    async def _shut_down(self, grace: float, timeout: float) -> ShutdownReport:
        began = time.monotonic()
        self._accepting = False
        callbacks, self._stopping_callbacks = self._stopping_callbacks, set()
        for callback in callbacks:
            callback()
        if self._consumer is not None:
            await self._consumer.stop_claiming()
        report = ShutdownReport()
        for active in self._active.values():
            if active.timer is not None:
                active.timer.cancel()
                active.timer = None
        running = [a for a in self._active.values() if a.task is not None and not a.task.done()]
        if running and grace > 0:
            self._dispatch()  # children already queued may start (see _dispatch_children)
            await asyncio.wait([a.task for a in running if a.task], timeout=grace)
        self._grace_over = True
        report.finished = [a.run.id for a in running if a.task and a.task.done()]
        # With the children started during the grace period.
        late = [a for a in self._active.values() if a.task and not a.task.done()]
        for active in late:
            if active.stop is None:
                active.stop, active.stop_reason = StopKind.SHUTDOWN, "shutdown"
                if active.phase is Phase.RUNNING:
                    assert active.task is not None
                    active.task.cancel()
        if late:
            await asyncio.wait([a.task for a in late if a.task], timeout=max(timeout, 0.0))
        for active in late:
            assert active.task is not None
            if active.task.done():
                if active.phase is Phase.WAITING:
                    pass  # never started: listed with the queued runs below
                elif active.stop is StopKind.SHUTDOWN:
                    report.interrupted.append(active.run.id)
                else:  # a user's cancel got there first: it ended cancelled
                    report.finished.append(active.run.id)
            else:
                report.stuck.append(active.run.id)
                active.phase = Phase.DONE
                await self.store.transition(
                    active.run.id,
                    RunState.INTERRUPTED,
                    "shutdown",
                    {"reason": "shutdown", "state": "interrupted", "stuck": True},
                )
        waiting = [a for a in self._active.values() if a.phase in (Phase.WAITING, Phase.BLOCKED)]
        for index, active in enumerate(waiting):
            report.queued.append(active.run.id)
            # One commit for all: batches commit in order, so the last (durable) write's commit
            # covers the others; thousands of queued runs do not cost a commit each.
            await self.store.append(
                active.run.id,
                "shutdown",
                {"reason": "shutdown", "state": "queued"},
                '{"reason":"shutdown","state":"queued"}',
                durable=index == len(waiting) - 1,
            )
        if self._consumer is not None:  # hand the unfinished runs back to the queue at once
            await self._consumer.stop(report.unfinished)
        # Runs that ended in the grace period did not wait for their terminal commit: their
        # watchers must get the terminal event before the log closes their streams.
        await self.store.flush()
        self.log.close()
        leftover = await self._supervisor.close(timeout=0.1)
        for task in leftover:
            logger.error("%s ignores cancellation and is left on the loop", task.get_name())
        report.duration = time.monotonic() - began
        for run_id in report.interrupted:
            logger.warning("run %s did not finish before shutdown: interrupted", run_id)
        for run_id in report.stuck:
            logger.error("run %s ignored cancellation during shutdown: interrupted", run_id)
        for run_id in report.queued:
            logger.info("run %s was still queued at shutdown; it stays queued", run_id)
        self._active.clear()
        return report
