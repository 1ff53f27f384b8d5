"""The coordinator: owns this process's runs from queued to done, and composes the engine.

It takes runs from its work queue (``ports.WorkQueue``), keeps them as ``ActiveRun`` (phases in
``active``): a ``scheduled`` run waits for its time in ``StartTimes``, a ready one in
``ReadyRuns`` (by priority, with ageing); it starts them within the ``Slots`` (and the
``RateLimits`` of their task), and hands each to ``Attempts``;
``Outcomes`` writes every lifecycle event, ``Endings`` and ``DependencyHolds`` learn from the
store's committed events which runs ended, and ``shutdown.stop_runs`` stops them all.

A cancel acts by phase: a WAITING or BLOCKED run is finished as ``cancelled`` on the spot; a
STARTING run is marked, and its task records ``cancelled`` instead of starting (throwing into a
coroutine that has not started would skip all of its handlers), and so is a RESCHEDULING one,
which is then cancelled instead of queued again; a RUNNING run gets ``CancelledError`` thrown
into its body, so its ``finally`` blocks run, and ``cancelled`` is recorded after; a FINISHING
run's terminal write is under way (True only if a cancel caused it). A run this process does not
own is its work queue's business (a local queue cancels it in the store; a shared one asks the
process that holds it).

Workflows (docs/semantics.md, "Workflows"): a run's children are runs like any other, submitted
with its ``parent_id``; the body's exit (however it exits) cancels the children still unfinished
and waits for them, so no child outlives its parent's attempt. A parent that waits for a child
lends its slot (``Slots.lending``). A BLOCKED run becomes WAITING once every run it waits for
has ended, or fails naming the one that did not complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from .. import tracing
from ..errors import (
    InvalidArguments,
    InvalidRequest,
    NotSerializable,
    RunFinished,
    RunNotFound,
    ShuttingDown,
    StoreError,
    UnknownTask,
)
from ..ids import is_run_id, new_run_id
from ..limits import MAX_PENDING_SIGNALS_PER_RUN, MAX_REASON, check_timeout
from ..log import EventLog
from ..models import CancelAnswer, Event, Run, encode_json, lone_surrogate
from ..names import check_signal_name
from ..owners import check_owner
from ..policies import check_priority, start_time
from ..resources import Resources
from ..states import RunState
from ..stores.base import Store
from ..supervisor import Supervisor
from ..tasks import TaskDefinition
from ..tracing import check_traceparent
from . import clock
from .active import ActiveRun, Phase, StopKind
from .attempts import Attempts
from .dependencies import AFTER_POLICIES, check_dependencies
from .outcomes import Outcomes
from .ports import Admission, ChildSubmission, QueueCounts, WorkQueue, child_submitted
from .rates import RateLimits
from .ready import ReadyRuns
from .shutdown import ShutdownReport, stop_runs
from .slots import Slots
from .start_times import StartTimes
from .waits import DependencyHolds, Endings

logger = logging.getLogger("taskcast")


class Coordinator:
    """Owns this process's runs and their lifecycle; see the module docstring."""

    def __init__(
        self,
        store: Store,
        log: EventLog,
        tasks: Mapping[str, TaskDefinition],
        queue: WorkQueue,
        *,
        max_concurrency: int,
        cancel_timeout: float,
        max_pending_signals: int = MAX_PENDING_SIGNALS_PER_RUN,
        resources: Resources | None = None,
    ) -> None:
        self.store = store
        self.log = log
        self.resources = resources if resources is not None else Resources()
        self._tasks = tasks
        self._queue = queue
        self.max_pending_signals = max_pending_signals
        self._active: dict[str, ActiveRun] = {}
        self._ready = ReadyRuns()
        self._supervisor = Supervisor()
        self.queued_count = 0
        self._accepting = False
        self._grace_over = False
        self._shutting_down: asyncio.Future[ShutdownReport] | None = None
        self._stopping_callbacks: set[Callable[[], None]] = set()
        self.outcomes = Outcomes(store)
        self.slots = Slots(max_concurrency, self._slot_freed, queue, self._ready_again)
        self.rates = RateLimits(self._ready_again)
        self.start_times = StartTimes(self._runs_due)
        self.endings = Endings(store)
        self.dependencies = DependencyHolds(store, self._dependencies_ended)
        self.attempts = Attempts(
            self,
            self.outcomes,
            self.slots,
            self.endings,
            self._supervisor,
            cancel_timeout=cancel_timeout,
            requeue=self._requeue,
            over=self._attempt_over,
        )
        log.add_listener(self._on_committed)
        store.on_reconnected(self._announcements_missed)

    # -- visible state -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def running_count(self) -> int:
        return self.slots.used

    def when_stopping(self, callback: Callable[[], None]) -> Callable[[], None]:
        """See ``App.when_stopping``."""
        if self._shutting_down is not None:
            callback()
            return lambda: None
        self._stopping_callbacks.add(callback)
        return lambda: self._stopping_callbacks.discard(callback)

    def stats(self) -> dict[str, int]:
        """Counts at a glance (this process): scheduled, queued (of which ``rate_limited`` and
        ``key_limited`` wait in the line of a limit), running, watchers, tasks owned."""
        return {
            "scheduled": self.start_times.count,
            "queued": self.queued_count,
            "rate_limited": self.rates.held,
            "key_limited": self.slots.in_lines,
            "running": self.slots.used,
            "watchers": self.log.watcher_count,
            "tasks": self._supervisor.active_count,
        }

    def counts(self) -> tuple[int, int]:
        """``(queued, running)`` in this process."""
        return self.queued_count, self.slots.used

    def waiting_counts(self) -> tuple[int, int]:
        """``(scheduled, rate_limited)`` in this process."""
        return self.start_times.count, self.rates.held

    async def queue_counts(self) -> QueueCounts:
        """Runs queued and running as the work queue counts them (see ``QueueCounts``)."""
        return await self._queue.counts()

    def knows(self, task: str) -> bool:
        return task in self._tasks

    def deployment_limit(self, task: str) -> int | None:
        """The task's ``concurrency`` (see ``ports.QueueOwner``); None when it is per key."""
        definition = self._tasks.get(task)
        return None if definition is None else definition.task_concurrency

    def admission(self, task: str) -> Admission:
        """The task's rate limit and per-key concurrency (see ``ports.QueueOwner``)."""
        definition = self._tasks.get(task)
        if definition is None:
            return Admission()
        rate, key = definition.rate_limit, definition.concurrency_key
        return Admission(
            rate_interval=0.0 if rate is None else rate.interval,
            rate_key=definition.rate_key or "",
            rate_default=definition.rate_key_of({}) or "null",
            key=key or "",
            key_default=definition.concurrency_key_of({}) or "null",
            key_limit=(definition.concurrency or 0) if key else 0,
        )

    def holds(self, run_id: str) -> bool:
        return run_id in self._active

    def waiting_reason(self, run_id: str) -> str | None:
        """Why a queued run this process owns does not start yet (``Run.waiting_for``)."""
        active = self._active.get(run_id)
        return None if active is None else active.waiting_reason

    def definition(self, task: str) -> TaskDefinition:
        """The registered task ``task``, or ``UnknownTask``."""
        try:
            return self._tasks[task]
        except KeyError:
            raise UnknownTask(task, list(self._tasks)) from None

    # -- starting ----------------------------------------------------------------------------

    async def start(self, *, take: bool = True) -> list[str]:
        """Start taking runs from the work queue (``take=False``: submit only), then accept
        work. Returns the ids of the runs resumed at once (a local queue resumes the store's
        unfinished runs; see ``resume``)."""
        resumed = await self._queue.start(self, take=take)
        self._accepting = True
        self._dispatch()
        self._queue.room_freed()
        return resumed

    async def resume(
        self, runs: Sequence[Run], signals: Mapping[str, Sequence[tuple[str, Any]]] | None = None
    ) -> list[str]:
        """Own the unfinished runs found in the store at start. Returns the resumed run ids.

        ``signals``: the signals each run's log holds, by run id, in order: handed to the run
        as a work queue hands those of a run it takes over (those an earlier attempt took are
        dropped as its durable ``ctx.signal`` records replay: ``runs.steps``).

        A run that was running when its process stopped (``interrupted``, or ``running`` after a
        crash) is queued again as a new attempt if it has attempts left, else it fails with a
        reason saying so. Runs of tasks this app does not register are left as they are; a
        child whose parent already finished is cancelled.
        """
        resumed = []
        unfinished_ids = {run.id for run in runs}
        orphans = []
        for run in runs:
            if run.task not in self._tasks:
                logger.warning(
                    "run %s of unregistered task %r left %s", run.id, run.task, run.state
                )
                continue
            if run.state in (RunState.RUNNING, RunState.INTERRUPTED):
                recovered = await self.outcomes.recover_interrupted(run)
                if recovered is None:
                    continue
                run = recovered
            logged = signals.get(run.id, ()) if signals else ()
            active = self._own(run, logged, blocked=bool(run.after))
            if active.waiting_for:
                await self.dependencies.check_ended(active)
            resumed.append(run.id)
            parent = self._active.get(run.parent_id) if run.parent_id else None
            if parent is not None:
                self.adopt(parent, run.id)
            elif run.parent_id is not None and run.parent_id not in unfinished_ids:
                orphans.append(run)
        for run in orphans:  # their parent ended (a crash between its end and theirs)
            await self.cancel(run.id, f"its parent {run.parent_id} already finished")
        return resumed

    async def recover_interrupted(self, run: Run) -> Run | None:
        """See ``Outcomes.recover_interrupted``."""
        return await self.outcomes.recover_interrupted(run)

    async def worker_lost(self, run: Run, reason: str) -> Run | None:
        """See ``Outcomes.worker_lost``."""
        return await self.outcomes.worker_lost(run, reason)

    async def cancel_in_store(self, run_id: str, reason: str) -> CancelAnswer:
        """See ``Outcomes.cancel_in_store``."""
        return await self.outcomes.cancel_in_store(run_id, reason)

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
        run_at: Any = None,
        delay: Any = None,
        priority: Any = None,
        owner: str | None = None,
        traceparent: str | None = None,
    ) -> Run:
        """Validate, store and queue (or schedule) a run; see ``App.submit_with`` for the
        contract. ``retry_of``: the id of the run this one retries (``App.retry``)."""
        run, _, _ = await self._submit(
            definition,
            args,
            run_id=run_id,
            timeout=timeout,
            max_attempts=max_attempts,
            after=after,
            after_policy=after_policy,
            retry_of=retry_of,
            run_at=run_at,
            delay=delay,
            priority=priority,
            owner=owner,
            traceparent=traceparent,
        )
        return run

    async def submit_tick(
        self,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        run_id: str | None,
        origin: dict[str, Any],
    ) -> tuple[Run, bool]:
        """Submit a schedule's run (``origin`` joins its first event's data: which schedule,
        which tick). Returns the run and True if this call created it (False: the tick's id
        existed, another process or an earlier try submitted it)."""
        run, created, _ = await self._submit(definition, args, run_id=run_id, origin=origin)
        return run, created

    def start_child(
        self,
        parent: ActiveRun,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        run_id: str | None,
        *,
        fresh: bool = False,
    ) -> asyncio.Task[ChildSubmission | Exception]:
        """Begin submitting a child of the running ``parent`` (``ctx.spawn``) and return its
        task at once (several children can then be stored together); ``child_submitted(task)``
        gives its outcome.

        The child gets the parent's id as ``parent_id`` and its deadline as a cap, and counts
        among the parent's children, cancelled when the parent's body exits. ``fresh``: the
        caller promises no run has ``run_id`` (the store may skip the look-up).
        """
        if not self._accepting and not self._in_grace:
            raise ShuttingDown("taskcast is shutting down and starts no new runs")
        if parent.phase is not Phase.RUNNING or parent.body_over:
            raise InvalidRequest(f"run {parent.run.id} is not running and cannot spawn children")
        # Owned by the supervisor and awaited shielded: a parent cancelled while the store
        # takes the child cannot leave it stored but never queued; it is queued, then cancelled
        # as the orphan of a body that is over (see ``_accepted``).
        return self._supervisor.start(
            self._submit_owned(definition, args, run_id, parent, fresh or run_id is None),
            name=f"taskcast spawn from {parent.run.id}",
        )

    async def submit_child(
        self,
        parent: ActiveRun,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        run_id: str | None = None,
    ) -> ChildSubmission:
        """``start_child`` and wait for its outcome."""
        return await child_submitted(self.start_child(parent, definition, args, run_id))

    async def _submit_owned(
        self,
        definition: TaskDefinition,
        args: Mapping[str, Any],
        run_id: str | None,
        parent: ActiveRun,
        fresh_id: bool,
    ) -> ChildSubmission | Exception:
        """The child's submission, as a task of its own (``Supervisor.start``: it hands its
        task back as it ends, and lets no exception out)."""
        try:
            run, created, ending = await self._submit(
                definition, args, run_id=run_id, parent=parent, fresh_id=fresh_id
            )
        except Exception as exc:  # the caller raises it (the supervisor would log it)
            return exc
        finally:
            self._supervisor.done(asyncio.current_task())
        if not created:
            return ChildSubmission(run, None)
        # Made before the child was stored: it may have ended (elsewhere) already.
        assert ending is not None
        return ChildSubmission(run, ending)

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
        run_at: Any = None,
        delay: Any = None,
        priority: Any = None,
        origin: dict[str, Any] | None = None,
        owner: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[Run, bool, asyncio.Future[Event] | None]:
        """Store and queue a run; returns it, whether it was created now (False: the id
        existed), and for a child the future of its end."""
        self._check_submit_options(timeout, max_attempts, child=parent is not None)
        starts_at = (
            None if run_at is None and delay is None else start_time(run_at, delay, clock.now())
        )
        if priority is not None:
            check_priority(priority)
        check_owner(owner)
        check_traceparent(traceparent)
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
        run = self._new_run(
            definition, stored_args, timeout, max_attempts, run_id, starts_at, priority
        )
        expected = False
        ending: asyncio.Future[Event] | None = None
        run.owner = owner
        if parent is not None:
            run.parent_id = parent.run.id
            run.not_after = _unix_deadline(parent)
            run.owner = parent.run.owner  # a child is seen by whoever sees its parent
            # Another process may take the child and finish it before the store's answer
            # reaches us: follow the store's announcements, and await its end, first.
            await self.endings.follow()
            ending, expected = self.endings.expect(run.id)
        if dependencies:
            run.after = dependencies
        if after_policy != run.after_policy:
            run.after_policy = after_policy
        run.retry_of = retry_of
        tracing.on_submit(run, traceparent)
        try:
            self._queue.reserve((run,))  # the place is taken before waiting for the store
        except BaseException:
            if expected:
                self.endings.forget(run.id)
            raise
        try:
            if dependencies:
                await check_dependencies(self.store, run.id, dependencies)
            stored, event = await self.store.create_run(
                run,
                {**self._first_event_data(run), **(origin or {})},
                fresh_id=run_id is None if fresh_id is None else fresh_id,
            )
        except asyncio.CancelledError:
            # Cancelled while waiting for the commit. Stores never undo a write they were handed
            # before the cancel: if the run is stored, it must be queued all the same, or it would
            # sit unowned in the store until the next start.
            created_at = run.created_at
            found = await self.store.get_run(run.id)
            if found is not None and found.created_at == created_at and not self.holds(found.id):
                await self._accepted(found, parent, ending)
            else:
                self._queue.unreserve((run,))
                if expected:
                    self.endings.forget(run.id)
            raise
        except BaseException:
            self._queue.unreserve((run,))
            if expected:
                self.endings.forget(run.id)
            raise
        if event is None:  # the id existed: an idempotent re-submit
            self._queue.unreserve((run,))
            if expected:
                self.endings.forget(run.id)
            return stored, False, None
        self._queue.accept(stored)
        if parent is not None or stored.after:
            await self._place(stored, parent, ending)
        return stored, True, ending

    async def _accepted(
        self,
        stored: Run,
        parent: ActiveRun | None,
        ending: asyncio.Future[Event] | None = None,
    ) -> None:
        """A run just stored goes to the work queue (and, for a child, to its parent)."""
        self._queue.accept(stored)
        await self._place(stored, parent, ending)

    async def _place(
        self,
        stored: Run,
        parent: ActiveRun | None,
        ending: asyncio.Future[Event] | None = None,
    ) -> None:
        """A run just accepted by the work queue joins its parent's children (``ending``: the
        future of its end, made before it was stored) and, held for its dependencies, learns
        which of them ended already."""
        if parent is not None:
            self.adopt(parent, stored.id, ending)
        active = self._active.get(stored.id)
        if active is not None and active.waiting_for:
            # Watched since ``accept``: an end committed since is noted either way.
            await self.dependencies.check_ended(active)
        if parent is not None and parent.body_over:  # the parent ended while we stored it
            await self.cancel(stored.id, f"its parent {parent.run.id} ended before it started")

    async def submit_many(
        self,
        definition: TaskDefinition,
        many_args: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        run_at: Any = None,
        delay: Any = None,
        priority: Any = None,
        owner: str | None = None,
        traceparent: str | None = None,
    ) -> list[Run]:
        """Validate, store and queue several runs at once; see ``App.submit_many``."""
        self._check_submit_options(timeout, max_attempts)
        starts_at = start_time(run_at, delay, clock.now())
        if priority is not None:
            check_priority(priority)
        check_owner(owner)
        check_traceparent(traceparent)
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
        runs = [
            self._new_run(definition, args, timeout, max_attempts, None, starts_at, priority)
            for args in stored_args
        ]
        for run in runs:
            run.owner = owner
            tracing.on_submit(run, traceparent)
        self._queue.reserve(runs)
        try:
            data = self._first_event_data(runs[0]) if runs else {}
            stored = await self.store.create_runs(runs, data)
        except BaseException:
            self._queue.unreserve(runs)
            raise
        for run in stored:
            self._queue.accept(run)
        return stored

    def _check_submit_options(
        self, timeout: float | None, max_attempts: int | None, *, child: bool = False
    ) -> None:
        # During the shutdown's grace period running parents may still spawn: their children
        # are part of the work that is finishing.
        if not self._accepting and not (child and self._in_grace):
            raise ShuttingDown("taskcast is shutting down (or not started) and takes no new runs")
        if timeout is not None:
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
        starts_at: float | None = None,
        priority: int | None = None,
    ) -> Run:
        run = Run(
            id=run_id or new_run_id(),
            task=definition.name,
            args=args,
            max_attempts=max_attempts or definition.max_attempts,
            timeout=timeout,
            created_at=clock.now(),
            priority=definition.priority if priority is None else priority,
        )
        if starts_at is not None:
            run.run_at = starts_at
            if starts_at > clock.now():  # in the past: it starts at once
                run.state = RunState.SCHEDULED
        return run

    @staticmethod
    def _first_event_data(run: Run) -> dict[str, Any]:
        """The data of a new run's first event (``queued``, or ``scheduled`` with its time)."""
        if run.run_at is None and not run.priority:
            return {"task": run.task}
        data: dict[str, Any] = {"task": run.task}
        if run.run_at is not None:
            data["run_at"] = run.run_at
        if run.priority:
            data["priority"] = run.priority
        return data

    # -- owning runs -------------------------------------------------------------------------

    def take_over(self, run: Run, signals: Sequence[tuple[str, Any]] = ()) -> None:
        """Own a stored, queued run that may start (see ``ports.QueueOwner``)."""
        self._own(run, signals)

    def hold(self, run: Run) -> None:
        """Own a stored run until its ``after`` dependencies end (see ``ports.QueueOwner``)."""
        self._own(run, blocked=True)

    def _own(
        self, run: Run, signals: Sequence[tuple[str, Any]] = (), *, blocked: bool = False
    ) -> ActiveRun:
        active = ActiveRun(run, self._tasks[run.task])
        for name, data in signals:
            active.mailbox.deliver(name, data, from_log=True)
        if run.parent_id is not None:
            active.deadline_cap = self._inherited_deadline(run)
        if run.state is RunState.SCHEDULED:
            self._active[run.id] = active
            self.start_times.add(active)
            return active
        self._queue_owned(active, blocked)
        return active

    def _queue_owned(self, active: ActiveRun, blocked: bool) -> None:
        """Count a queued run this process owns, and hold it for its dependencies (``blocked``)
        or make it ready."""
        self.queued_count += 1
        if blocked:
            self._active[active.run.id] = active
            self.dependencies.watch(active)
            self.dependencies.hold(active)
        else:
            self._enqueue(active)

    def _runs_due(self, due: list[ActiveRun]) -> None:
        """The start time of these scheduled runs came: queue them (in their own task)."""
        if self._supervisor.closed:
            return  # stopped: they stay scheduled, and the next start queues them
        self._supervisor.spawn(self._promote(due), name=f"taskcast {len(due)} runs due")

    async def _promote(self, due: list[ActiveRun]) -> None:
        for index, active in enumerate(due):
            if index % 64 == 63:
                # Let the runs queued so far start (and others work) while many are queued:
                # a store's write may not suspend at all (memory), and 100,000 runs may be due.
                await asyncio.sleep(0)
            if active.phase is not Phase.SCHEDULED:
                continue  # cancelled meanwhile
            moved = await self.outcomes.due(active)
            if moved is None or active.phase is not Phase.SCHEDULED:
                continue  # cancelled while the write was on its way
            active.run = moved
            self._queue_owned(active, bool(moved.after))
            if active.waiting_for:
                await self.dependencies.check_ended(active)

    def _inherited_deadline(self, run: Run) -> float | None:
        """The cap of a child's attempts (event loop time): its parent's deadline, exact when the
        parent runs here, else from the Unix time its record keeps (``Run.not_after``)."""
        parent = self._active.get(run.parent_id or "")
        if parent is not None and parent.phase is Phase.RUNNING:
            return parent.deadline
        if run.not_after is None:
            return None
        return asyncio.get_running_loop().time() + (run.not_after - time.time())

    def _dependencies_ended(self, active: ActiveRun) -> None:
        """Every dependency of the BLOCKED ``active`` ended: queue it, or fail it."""
        if active.dependency_failures and active.run.after_policy == "fail":
            if self._supervisor.closed:
                return  # stopped: it stays queued, and the next start fails it
            active.phase = Phase.DONE
            self.queued_count -= 1
            self._active.pop(active.run.id, None)
            dependency_id, error = active.dependency_failures[0]
            self._supervisor.spawn(
                self.outcomes.dependency_failed(active, dependency_id, error),
                name=f"taskcast dependency failure {active.run.id}",
            )
            return
        self._enqueue(active)

    def _on_committed(self, events: Sequence[Event]) -> None:
        """The store committed ``events``: resolve who waits for the runs that ended.

        It runs inside the store's commit path, which must never fail: a bug here is logged.
        """
        if not self.endings.awaited and not self.dependencies.blocked:
            return
        try:
            self.dependencies.note(events)
            self.endings.note(events)
        except Exception:
            logger.exception("taskcast could not process the end of a run")

    def _announcements_missed(self) -> None:
        """The store's subscription was broken: ends of awaited runs may have been missed."""
        if self.endings.awaited and not self._supervisor.closed:
            self._supervisor.spawn(self._recheck_endings(), name="taskcast endings re-check")

    async def _recheck_endings(self) -> None:
        try:
            await self.endings.recheck()
        except StoreError as exc:  # still away: the next reconnect checks again
            logger.warning("could not re-check the runs awaited here (%s)", exc)

    # -- workflows: children (RunServices) ---------------------------------------------------

    async def emit(self, run_id: str, type: str, data: Any, data_json: str) -> Event:
        """Append an event of the run's own (not durable: ordered now, committed with the next
        batch, before the run's terminal write, so a chatty task does not wait for each one)."""
        return await self.store.append(run_id, type, data, data_json, durable=False)

    async def record(self, run_id: str, type: str, data: Any, data_json: str) -> Event:
        """Append an event the engine writes for the run (a durable ``step``), durably."""
        return await self.store.append(run_id, type, data, data_json)

    async def read_events(self, run_id: str, after: int, limit: int) -> list[Event]:
        """See ``Store.read_events``."""
        return await self.store.read_events(run_id, after, limit)

    async def get_run(self, run_id: str) -> Run | None:
        """See ``Store.get_run``."""
        return await self.store.get_run(run_id)

    async def emit_many(self, run_id: str, entries: Sequence[tuple[str, Any, str]]) -> list[Event]:
        """``emit`` for several events, handed to the store as one write."""
        return await self.store.append_many(run_id, entries, durable=False)

    def lending_slot(self, active: ActiveRun) -> AbstractAsyncContextManager[None]:
        return self.slots.lending(active)

    def adopt(
        self, parent: ActiveRun, child_id: str, ending: asyncio.Future[Event] | None = None
    ) -> None:
        """Count ``child_id`` among ``parent``'s unfinished children until it ends (``ending``:
        the future of its end, if the caller has it: the child may have ended already)."""
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
        if ending is None:
            ending = self.endings.future(child_id)
        ending.add_done_callback(lambda _: children.discard(child_id))

    async def watch_end(self, run_id: str) -> asyncio.Future[Event]:
        """See ``Endings.watch``."""
        return await self.endings.watch(run_id)

    async def wait_for_end(self, run_id: str) -> Event:
        """See ``Endings.wait``."""
        return await self.endings.wait(run_id)

    # -- queueing and dispatching ------------------------------------------------------------

    def room(self) -> dict[str, int]:
        """How many more runs of each task this process can take now (shared queues). During
        the shutdown's grace period, only while a running parent waits for children (which it
        alone may be here to run: only those are started then, the rest are handed back)."""
        free = self.slots.limit - self.slots.used - self.queued_count
        if free <= 0 or not (self._accepting or (self._in_grace and self._parents_waiting())):
            return {}
        wanted = {}
        for name, definition in self._tasks.items():
            count = free
            concurrency = definition.task_concurrency
            if concurrency is not None:
                waiting = self._ready.waiting(name)
                count = min(count, concurrency - self.slots.by_task[name] - waiting)
            if count > 0:
                wanted[name] = count
        return wanted

    def _parents_waiting(self) -> bool:
        return any(
            active.children and active.phase is Phase.RUNNING and active.stop is None
            for active in self._active.values()
        )

    def _enqueue(self, active: ActiveRun) -> None:
        """Make a WAITING run ready now, or after its ``not_before`` time (retry backoff)."""
        active.phase = Phase.WAITING
        self._active[active.run.id] = active
        not_before = active.run.not_before
        delay = 0.0 if not_before is None else not_before - clock.now()
        if delay > 0:
            active.timer = asyncio.get_running_loop().call_later(delay, self._make_ready, active)
        else:
            self._make_ready(active)

    def _requeue(self, active: ActiveRun) -> None:
        """Take back a run whose failed attempt was recorded ``retrying``."""
        self.queued_count += 1
        if active.stop is StopKind.SHUTDOWN:  # stays queued; shutdown lists it
            active.phase = Phase.WAITING
            return
        self._enqueue(active)

    def _make_ready(self, active: ActiveRun) -> None:
        active.timer = None
        if active.phase is not Phase.WAITING:
            return
        self._ready.add(active)
        self._dispatch()

    def _ready_again(self, active: ActiveRun) -> None:
        """The head of a limit's line may start now: back among the ready runs, in its place
        (``dispatch`` follows: a slot was freed, or a timer fired)."""
        if active.phase is not Phase.WAITING:
            return
        self._ready.add(active, again=True)
        self._dispatch()

    def _slot_freed(self) -> None:
        self._dispatch()
        self._queue.room_freed()

    def _dispatch(self) -> None:
        """Start ready runs, smallest rank first (``ReadyRuns``), while the limits allow: the
        global and per-task slots; a run whose key is full, or whose rate is spent, goes to
        the line of that limit instead (``Slots.admit``, ``RateLimits.admit``)."""
        slots = self.slots
        slots.serve_reclaimers()
        if not self._accepting:
            if self._in_grace:
                self._dispatch_children()
            return
        ready = self._ready
        while slots.used < slots.limit:
            chosen: ActiveRun | None = None
            for name in ready.tasks():
                head = ready.head(name)
                if head is None or slots.task_full(name, head.definition.task_concurrency):
                    continue
                if chosen is None or (head.rank, head.order) < (chosen.rank, chosen.order):
                    chosen = head
            if chosen is None:
                return
            ready.pop(chosen.definition.name)
            if slots.admit(chosen) and self.rates.admit(chosen):
                self._start(chosen)

    @property
    def _in_grace(self) -> bool:
        """Shutting down, in the grace period: running runs may still finish their work."""
        return self._shutting_down is not None and not self._grace_over

    def _dispatch_children(self) -> None:
        """During the grace period, start only children of running parents (oldest first per
        task): the parents wait for them, so they are part of the work that is finishing."""
        for task in list(self._ready.tasks()):
            for active in self._ready.in_order(task):
                if self.slots.full:
                    return
                if not self.slots.has_room(active):
                    break
                parent = self._active.get(active.run.parent_id or "")
                if parent is not None and parent.phase is Phase.RUNNING and parent.stop is None:
                    self._ready.remove(active)
                    self._start(active)

    def _start(self, active: ActiveRun) -> None:
        self.queued_count -= 1
        self.slots.take(active)
        active.phase = Phase.STARTING
        active.task = self._supervisor.start(
            self.attempts.execute(active), name=f"taskcast run {active.run.id}"
        )

    def _attempt_over(self, active: ActiveRun) -> None:
        if active.phase is Phase.DONE:
            self._active.pop(active.run.id, None)

    # -- cancelling --------------------------------------------------------------------------

    async def cancel(self, run_id: str, reason: str) -> bool:
        """See ``App.cancel``."""
        return (await self.request_cancel(run_id, reason)).accepted

    async def request_cancel(self, run_id: str, reason: str) -> CancelAnswer:
        """See ``App.request_cancel``."""
        if not isinstance(reason, str) or len(reason) > MAX_REASON or lone_surrogate(reason):
            raise InvalidRequest(
                f"reason must be text of at most {MAX_REASON} characters, got {reason!r:.80}"
            )
        active = self._active.get(run_id)
        if active is None:  # not owned here: the work queue knows who holds it, if anyone
            return await self._queue.cancel(run_id, reason)
        if active.phase is Phase.SCHEDULED:
            self.start_times.forget(active)
            active.phase = Phase.DONE
            self._active.pop(run_id, None)
            return await self.outcomes.cancel_in_store(run_id, reason)
        if active.phase in (Phase.WAITING, Phase.BLOCKED):
            self.dependencies.unwatch(active)
            self.slots.leave_line(active)
            self.rates.leave_line(active)
            active.phase = Phase.DONE
            active.cancel_timer()
            self.queued_count -= 1
            self._active.pop(run_id, None)
            self._queue.room_freed()
            return await self.outcomes.cancel_in_store(run_id, reason)
        if active.phase in (Phase.STARTING, Phase.RESCHEDULING):
            if active.stop is None:
                active.stop, active.stop_reason = StopKind.CANCEL, reason
        elif active.phase is Phase.RUNNING:
            if active.stop is None:
                active.stop, active.stop_reason = StopKind.CANCEL, reason
                assert active.task is not None
                active.task.cancel()
                self.attempts.watch_cancel(active)
        # FINISHING: the body ended and its terminal write is under way. A cancel that ended it
        # is still in progress (a second cancel is accepted too); anything else is refused, the
        # run's end being written (its state: not terminal yet).
        return CancelAnswer(active.stop is StopKind.CANCEL, state=active.run.state)

    # -- signals -----------------------------------------------------------------------------

    async def signal(self, run_id: str, name: str, data: Any) -> None:
        """See ``App.signal``."""
        check_signal_name(name)
        await self._queue.signal(run_id, name, data)

    def signal_taken(self, run_id: str, name: str) -> None:
        """See ``RunServices.signal_taken``: the queue counts it, if it counts signals."""
        self._queue.signal_taken(run_id, name)

    async def signal_here(self, run_id: str, name: str, data: Any) -> None:
        """Log a signal for a run this process owns and hand it to its mailbox; raise
        ``RunNotFound`` or ``RunFinished`` for a run it does not own."""
        active = self._active.get(run_id)
        if active is None or not active.can_take_signals:
            run = await self.store.get_run(run_id)
            if run is None:
                raise RunNotFound(run_id)
            raise RunFinished(run_id, run.state)
        payload = {"name": name, "data": data}
        data_json = encode_json(payload, "signal data")
        mailbox = active.mailbox
        mailbox.hold(run_id, name, self.max_pending_signals)
        try:
            await self.store.append(run_id, "signal", payload, data_json)
        finally:
            mailbox.release(name)
        mailbox.deliver(name, data)

    def deliver_signal(self, run_id: str, name: str, data: Any) -> None:
        """Hand a signal logged by another process to the run, if this process owns it."""
        active = self._active.get(run_id)
        if active is not None and active.can_take_signals:
            active.mailbox.deliver(name, data)

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
        self.start_times.close()
        self.rates.close()
        self.endings.stopping = True
        callbacks, self._stopping_callbacks = self._stopping_callbacks, set()
        for callback in callbacks:
            callback()
        await self._queue.stop_taking()
        report = await stop_runs(
            self._active.values,
            self.outcomes,
            watched=self.log.is_watched,
            grace=grace,
            timeout=timeout,
            dispatch=self._dispatch,
            grace_over=self._end_grace,
        )
        await self._queue.hand_back(report.unfinished)
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

    def _end_grace(self) -> None:
        self._grace_over = True


def _unix_deadline(active: ActiveRun) -> float | None:
    """The deadline of ``active``'s attempt as a Unix time (what a child's record keeps, so
    that whichever process executes the child caps its attempts by it), or None."""
    if active.deadline is None:
        return None
    return time.time() + (active.deadline - asyncio.get_running_loop().time())
