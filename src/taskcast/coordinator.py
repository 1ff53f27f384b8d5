"""The coordinator: queues runs, starts them within the limits, and writes their lifecycle.

Every run this process owns is an ``ActiveRun`` in one of four phases:

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

With a shared store (Redis, ``Store.shared``) the queue lives in the store: ``submit`` only
stores the run, and a ``QueueConsumer`` (``consumer.py``) takes runs from the store while this
process has free slots and hands them to ``adopt``; a cancel or signal for a run held by another
process goes through the store. Everything from WAITING on is the same.

The terminal write is never lost to a cancel: stores hand a write over before their first
suspension, so a ``CancelledError`` can only interrupt the *wait* for the commit, never the write.
The store's compare-and-set makes the first terminal write the only one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .consumer import QueueConsumer
from .context import Context
from .errors import (
    InvalidArguments,
    InvalidRequest,
    NotSerializable,
    QueueFull,
    RunFinished,
    RunNotFound,
    ShuttingDown,
)
from .ids import new_run_id
from .log import EventLog
from .models import Run
from .states import RunState
from .stores.base import Store, encode_json
from .supervisor import Supervisor
from .tasks import TaskDefinition

logger = logging.getLogger("taskcast")

MAX_PENDING_SIGNALS = 100
"""Signals kept per name for a run that has not asked for them yet."""


class Phase(Enum):
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
        "definition",
        "holds_slot",
        "order",
        "phase",
        "run",
        "signal_waiters",
        "signals",
        "stop",
        "stop_reason",
        "task",
        "timer",
    )

    def __init__(self, run: Run, definition: TaskDefinition) -> None:
        self.run = run
        self.definition = definition
        self.phase = Phase.WAITING
        self.holds_slot = False
        self.order = 0
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.stop: StopKind | None = None
        self.stop_reason = ""
        self.signals: dict[str, deque[Any]] = {}
        self.signal_waiters: dict[str, deque[asyncio.Future[Any]]] = {}

    def deliver_signal(self, name: str, data: Any) -> None:
        for waiter in self.signal_waiters.get(name, ()):
            if not waiter.done():
                waiter.set_result(data)
                return
        self.signals.setdefault(name, deque()).append(data)


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
    return {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}


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
        consume: bool = True,
    ) -> None:
        self.store = store
        self.log = log
        self._tasks = tasks
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.cancel_timeout = cancel_timeout
        self._active: dict[str, ActiveRun] = {}
        self._ready: dict[str, deque[ActiveRun]] = {}
        self._order = itertools.count()
        self._supervisor = Supervisor()
        self.queued_count = 0
        self.running_count = 0
        self._running_by_task: Counter[str] = Counter()
        self._accepting = False
        self._report: ShutdownReport | None = None
        self._shutting_down: asyncio.Future[ShutdownReport] | None = None
        # Shared stores: the consumer taking runs from the store's queue (None: API node only).
        self._consume = consume
        self._consumer: QueueConsumer | None = None

    # -- visible state -----------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

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
        for run in await self.store.unfinished_runs():
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
            self._enqueue(ActiveRun(run, definition))
            resumed.append(run.id)
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
    ) -> Run:
        """Validate, store and queue a run; see ``App.submit_with`` for the contract."""
        self._check_submit_options(timeout, max_attempts)
        if run_id is not None and not (isinstance(run_id, str) and 0 < len(run_id) <= 128):
            raise InvalidRequest(f"id must be a string of 1 to 128 characters, got {run_id!r}")
        stored_args = self._stored_arguments(definition, args)
        if self.queued_count >= self.max_queue and not self.store.shared:
            raise QueueFull(self.max_queue, retry_after=1.0)
        run = self._new_run(definition, stored_args, timeout, max_attempts, run_id)
        if self.store.shared:  # the store queues it (and bounds the queue); a worker takes it
            stored, _ = await self.store.create_run(
                run, {"task": run.task}, fresh_id=run_id is None
            )
            if self._consumer is not None:  # a task registered after start: look at its queue
                await self._consumer.notice_task(run.task)
            return stored
        self.queued_count += 1  # reserve the place before waiting for the store
        try:
            stored, event = await self.store.create_run(
                run, {"task": run.task}, fresh_id=run_id is None
            )
        except BaseException:
            self.queued_count -= 1
            raise
        if event is None:  # the id existed: an idempotent re-submit
            self.queued_count -= 1
            return stored
        self._enqueue(ActiveRun(stored, definition))
        return stored

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

    def _check_submit_options(self, timeout: float | None, max_attempts: int | None) -> None:
        if not self._accepting:
            raise ShuttingDown("taskcast is shutting down (or not started) and takes no new runs")
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise InvalidRequest(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_attempts is not None and not (isinstance(max_attempts, int) and max_attempts >= 1):
            raise InvalidRequest(f"max_attempts must be an integer >= 1, got {max_attempts!r}")

    @staticmethod
    def _stored_arguments(definition: TaskDefinition, args: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return definition.validate_arguments(dict(args))
        except ValueError as exc:  # pydantic could not render a value as JSON
            raise NotSerializable(f"the arguments of {definition.name!r}: {exc}") from None

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

    def adopt(self, run: Run, signals: list[tuple[str, Any]]) -> None:
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
        if not self._accepting:
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

    def _start(self, active: ActiveRun) -> None:
        self.queued_count -= 1
        self.running_count += 1
        self._running_by_task[active.definition.name] += 1
        active.holds_slot = True
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
            if timeout is None:  # no scope at all: the common case stays cheap
                result = await definition.invoke(Context(self, active, None), run.args)
            else:
                deadline = loop.time() + timeout
                async with asyncio.timeout_at(deadline) as scope:
                    result = await definition.invoke(Context(self, active, deadline), run.args)
        except asyncio.CancelledError:
            active.phase = Phase.FINISHING
            self._release_slot(active)
            await self._finish_stopped(active, cleanup_error=None)
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            active.phase = Phase.FINISHING
            self._release_slot(active)
            await self._finish(active, RunState.FAILED, {"error": _error(exc)}, error=_error(exc))
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

    async def _finish(
        self, active: ActiveRun, state: RunState, data: dict[str, Any], **fields: Any
    ) -> None:
        """Write the run's terminal state and event (once; see "never lost" above)."""
        active.phase = Phase.DONE
        now = time.time()
        if active.run.started_at is not None:
            data["duration"] = round(now - active.run.started_at, 6)
        await self.store.transition(
            active.run.id, state, state.value, data, finished_at=now, **fields
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
        active = self._active.get(run_id)
        if active is None:
            # Not owned here: unknown, finished, or (another app's) unfinished run in the store.
            if self.store.shared:  # maybe held by another worker: the store asks it
                return await self.store.request_cancel(run_id, reason)
            moved = await self._cancel_in_store(run_id, reason)
            return moved
        if active.phase is Phase.WAITING:
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
        return False

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
        if len(active.signals.get(name, ())) >= MAX_PENDING_SIGNALS:
            raise InvalidRequest(
                f"run {run_id!r} already has {MAX_PENDING_SIGNALS} undelivered {name!r} signals"
            )
        payload = {"name": name, "data": data}
        await self.store.append(run_id, "signal", payload, encode_json(payload, "signal data"))
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
        if self._consumer is not None:
            await self._consumer.stop_claiming()
        report = ShutdownReport()
        for active in self._active.values():
            if active.timer is not None:
                active.timer.cancel()
                active.timer = None
        running = [a for a in self._active.values() if a.task is not None and not a.task.done()]
        if running and grace > 0:
            await asyncio.wait([a.task for a in running if a.task], timeout=grace)
        report.finished = [a.run.id for a in running if a.task and a.task.done()]
        late = [a for a in running if a.task and not a.task.done()]
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
        waiting = [a for a in self._active.values() if a.phase is Phase.WAITING]
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
