"""``App``: register tasks, submit runs, watch them, cancel them, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx

from . import events
from .cursors import check_cursor
from .errors import (
    InvalidRequest,
    NotRetryable,
    RunNotFound,
    ShuttingDown,
    UnknownSchedule,
    UnknownTask,
)
from .ids import is_run_id
from .limits import MAX_PENDING_SIGNALS_PER_RUN, check_timeout
from .log import EventLog
from .models import CancelAnswer, Event, Run
from .owners import check_owner
from .policies import Retention
from .queues import is_shared, queue_for
from .resources import Pool, Resources
from .runs.coordinator import Coordinator
from .runs.ports import QueueCounts
from .runs.retention import Pruner
from .runs.scheduler import Scheduler
from .runs.shutdown import ShutdownReport
from .runs.steps import timeline
from .schedules import Schedule
from .states import RunState
from .stats import DEFAULT_STEP, DEFAULT_WINDOW, Activity, Window
from .stores import Store, store_from_url
from .tasks import RetryPolicy, TaskDefinition

logger = logging.getLogger("taskcast")

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation, set by the first App that
starts in a process left at CPython's default (700)."""


def suit_garbage_collection() -> None:
    """Garbage collection suited to an engine that keeps many long-lived records (issue 23).

    Called as an App starts. Everything alive then (modules, classes, the App and its tasks)
    lives as long as the process: ``gc.freeze()`` takes it out of every later collection, so
    full collections walk only what came after. And the youngest generation is collected every
    ``YOUNG_THRESHOLD`` allocations instead of 700: a run allocates about a dozen tracked
    objects, most of them freed by their reference counts, so a collection every ~60 runs found
    little but cost a walk each time. Both only once per process, and only while nobody else
    set them: a process that froze objects itself (the test kit's leak guard does, for each
    test) or chose its own thresholds keeps them.
    """
    if gc.get_freeze_count() == 0 and gc.isenabled():
        gc.freeze()
    if gc.get_threshold()[0] == 700:
        threshold = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, *threshold[1:])


class App:
    """A taskcast application: a task registry bound to a store.

    ``store`` is a URL (``memory://``, ``sqlite:///PATH``, ``redis://HOST:PORT/DB``) or a
    ``Store``. ``max_concurrency``
    bounds runs executing at once; ``max_queue`` bounds runs waiting (submit raises ``QueueFull``
    beyond it); ``cancel_timeout`` is how long a cancelled body may ignore the cancellation before
    the run is recorded ``cancelled`` regardless. ``max_pending_signals`` bounds the signals a
    run holds before its task asks for them (``app.signal`` raises ``TooManySignals`` beyond;
    at most 100 of one name whatever it is). ``worker=False`` (shared stores only)
    makes an API node: it submits, watches and cancels runs that worker processes execute.
    ``retention``: how long and how many finished runs are kept before they are pruned in the
    background (a ``Retention``, seconds, or text such as ``"7d"``, ``"1h,10000"`` or
    ``"forever"``); default: the store's (``memory://``: the newest 10,000 finished runs of each
    task, for an hour at most; SQLite and Redis: 7 days). A task's own ``retention`` wins.

    Use ``async with app:`` (or ``await app.start()`` ... ``await app.shutdown()``).
    """

    def __init__(
        self,
        store: str | Store = "memory://",
        *,
        max_concurrency: int = 100,
        max_queue: int = 10_000,
        cancel_timeout: float = 10.0,
        grace: float = 10.0,
        shutdown_timeout: float = 5.0,
        max_pending_signals: int = MAX_PENDING_SIGNALS_PER_RUN,
        worker: bool = True,
        retention: Retention | str | float | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if max_pending_signals < 1:
            raise ValueError(f"max_pending_signals must be >= 1, got {max_pending_signals}")
        self.store = store_from_url(store) if isinstance(store, str) else store
        self._retention: Retention | None = None
        if retention is not None:
            self.retention = retention  # parsed by the setter
        self.tasks: dict[str, TaskDefinition] = {}
        self.schedules: dict[str, Schedule] = {}
        self._scheduler: Scheduler | None = None
        self._pruner: Pruner | None = None
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.cancel_timeout = cancel_timeout
        self.max_pending_signals = max_pending_signals
        self.grace = grace
        self.shutdown_timeout = shutdown_timeout
        self.resources = Resources()
        self._refused: dict[str, str] = {}
        self.worker = worker
        self._coordinator: Coordinator | None = None
        self._log: EventLog | None = None
        self.started = False
        self.stopped = False

    # -- registering tasks -------------------------------------------------------------------

    @overload
    def task(self, function: _F, /) -> _F: ...

    @overload
    def task(
        self,
        function: None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        jitter: bool = True,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
        rate_limit: str | None = None,
        rate_key: str | None = None,
        priority: int = 0,
        retention: Retention | str | float | None = None,
    ) -> Callable[[_F], _F]: ...

    def task(
        self,
        function: Any = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        backoff: float = 1.0,
        backoff_max: float = 60.0,
        jitter: bool = True,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
        rate_limit: str | None = None,
        rate_key: str | None = None,
        priority: int = 0,
        retention: Retention | str | float | None = None,
    ) -> Any:
        """Register a task (decorator, with or without arguments). Returns the function as is.

        ``timeout``: seconds per attempt (``timed_out`` after). ``retries``: extra attempts after a
        failure (so ``max_attempts = retries + 1``), for exceptions in ``retry_on``, after
        ``backoff * 2**(attempt-1)`` seconds at most (capped by ``backoff_max``, with full jitter).
        ``concurrency``: runs of this task executing at once; with ``concurrency_key="arg"``, at
        once per value of that argument (one build per repository), the others waiting in order.
        ``rate_limit="N/s|m|h"``: starts at most N per second, minute or hour, evenly spaced
        (per value of the ``rate_key`` argument, if named); a run waiting for its rate is
        ``queued``, holds no slot, and ``get`` says ``waiting_for="rate_limit"``. On a shared
        store (Redis) both limits hold for the whole deployment. ``priority``: the default
        priority of its runs, 0 to 9, higher first. ``retention``: how long and how many of its
        finished runs are kept (overrides the App's; see ``Retention``). ``name`` defaults to
        the function's ``__name__`` (``fetch`` for ``async def fetch``, wherever it is). Raises
        ``ValueError`` for a bad policy, or for a name already registered (naming both
        functions: give one of them ``name=``).
        """

        def register(fn: _F) -> _F:
            definition = TaskDefinition.from_function(
                fn,
                name=name,
                timeout=timeout,
                retry=RetryPolicy(
                    retries=retries,
                    backoff=backoff,
                    backoff_max=backoff_max,
                    jitter=jitter,
                    retry_on=retry_on,
                ),
                concurrency=concurrency,
                concurrency_key=concurrency_key,
                rate_limit=rate_limit,
                rate_key=rate_key,
                priority=priority,
                retention=retention,
            )
            taken = self.tasks.get(definition.name)
            if taken is not None:
                raise ValueError(
                    f"two tasks named {definition.name!r}: {_where(taken.function)} and"
                    f" {_where(fn)}; give one another name with @app.task(name=...)"
                )
            self.tasks[definition.name] = definition
            return fn

        return register(function) if function is not None else register

    @property
    def retention(self) -> Retention:
        """How long and how many finished runs are kept (the store's default unless set)."""
        return self.store.default_retention if self._retention is None else self._retention

    @retention.setter
    def retention(self, value: Retention | str | float) -> None:
        try:
            self._retention = Retention.parse(value)
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None

    def schedule(
        self,
        name: str,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        cron: str | None = None,
        every: float | None = None,
        timezone: str = "UTC",
        catch_up: str = "latest",
        enabled: bool = True,
    ) -> Schedule:
        """Start a run of ``task`` with ``args`` at every tick of ``cron`` (5 fields, in
        ``timezone``, DST-correct) or ``every`` seconds (>= 1; ticks at the Unix times divisible
        by it). Each tick starts at most one run, however many processes share the store and
        however often they restart (its id derives from the schedule and the tick). Ticks missed
        while no process was up: ``catch_up="latest"`` starts one run for the latest of them,
        ``"none"`` skips them. ``enabled=False`` registers it paused (``resume_schedule``).

        Register schedules before ``start``; the task may be registered after, and ``start``
        checks it and its arguments. Raises ``ValueError`` naming the field (a bad name, cron
        expression, period, time zone or catch-up) or for a name already registered.
        """
        if self.started:
            raise RuntimeError("register schedules before the App starts")
        defined = Schedule.create(
            name,
            task,
            dict(args or {}),
            cron=cron,
            every=every,
            timezone=timezone,
            catch_up=catch_up,
            enabled=enabled,
        )
        if name in self.schedules:
            raise ValueError(f"a schedule named {name!r} is registered already")
        self.schedules[name] = defined
        return defined

    def definition(self, task: str) -> TaskDefinition:
        """The registered task ``task``, or ``UnknownTask`` listing the registered names (and,
        for a task turned off with ``refuse_task``, saying how to turn it on)."""
        try:
            return self.tasks[task]
        except KeyError:
            error = UnknownTask(task, list(self.tasks))
            hint = self._refused.get(task)
            if hint is not None:
                error.message = f"task {task!r} is not enabled: {hint}"
                error.args = (error.message,)
                error.details["hint"] = hint
            raise error from None

    def refuse_task(self, name: str, hint: str) -> None:
        """Mark ``name`` as a task that exists but is off here: submitting it raises
        ``UnknownTask`` with ``hint`` (e.g. how to enable it) instead of the plain message."""
        self._refused[name] = hint

    def resource(
        self,
        name: str,
        create: Callable[[], Awaitable[_T]],
        close: Callable[[_T], Awaitable[Any]],
        validate: Callable[[_T], Awaitable[bool]] | None = None,
        *,
        max_size: int = 10,
        timeout: float | None = 30.0,
    ) -> Pool[_T]:
        """Register a shared pool tasks borrow from with ``async with ctx.resource(name)``.

        ``create()`` makes an item (awaited, at most ``max_size`` alive), ``close(item)`` ends
        one (at shutdown, or when ``validate(item)`` says it went bad before a borrow).
        ``timeout``: seconds a borrower waits for a free item before ``ResourceTimeout``.
        Borrowers are served in arrival order; an item comes back however the borrowing block
        ends. Returns the ``Pool`` (for its counts). Raises ``ValueError`` for a taken name.
        """
        pool: Pool[_T] = Pool(
            name, create, close, validate=validate, max_size=max_size, timeout=timeout
        )
        self.resources.add(pool)
        return pool

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared ``httpx.AsyncClient`` tasks get as ``ctx.http`` (closed at shutdown)."""
        return self.resources.http

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, resume unfinished runs (see ``Coordinator.start``), accept work.

        Raises ``StoreError`` if the store cannot be opened.
        """
        if self.started:
            raise RuntimeError("this App was already started; an App runs once")
        if not self.worker and not self.shared:
            raise ValueError(
                f"worker=False needs a store that workers share (redis://), not {self.store.url!r}"
            )
        for schedule in self.schedules.values():  # refused before anything is opened
            self.definition(schedule.task).validate_arguments(dict(schedule.args))
        self.started = True
        queue = queue_for(self.store, max_queue=self.max_queue)
        await self.store.open()
        self._log = EventLog(self.store)
        self._coordinator = Coordinator(
            self.store,
            self._log,
            self.tasks,
            queue,
            max_concurrency=self.max_concurrency,
            cancel_timeout=self.cancel_timeout,
            max_pending_signals=self.max_pending_signals,
            resources=self.resources,
        )
        resumed = await self._coordinator.start(take=self.worker)
        if resumed:
            logger.info("resumed %d unfinished runs", len(resumed))
        coordinator = self._coordinator
        self._pruner = Pruner(
            self.store,
            {name: task.retention or self.retention for name, task in self.tasks.items()},
            spare=coordinator.dependencies.awaited,
        )
        self._log.add_listener(self._pruner.note)
        self._pruner.start()
        self._scheduler = Scheduler(self.schedules, self.store, self._submit_tick)
        self._scheduler.start()
        suit_garbage_collection()

    async def _submit_tick(self, schedule: Schedule, tick: float | None) -> tuple[Run, bool]:
        origin: dict[str, Any] = {"schedule": schedule.name}
        if tick is not None:
            origin["tick"] = tick
        return await self._running().submit_tick(
            self.definition(schedule.task),
            schedule.args,
            None if tick is None else schedule.run_id(tick),
            origin,
        )

    async def shutdown(
        self, grace: float | None = None, timeout: float | None = None
    ) -> ShutdownReport:
        """Stop cleanly and return what happened to each unfinished run.

        New submits raise ``ShuttingDown`` at once. Running runs get ``grace`` seconds to finish;
        the rest are cancelled (their cleanup runs) and get ``timeout`` more seconds, then are
        persisted as ``interrupted`` (resumed on the next start). Queued runs stay queued. Every
        unfinished run's log gets a ``shutdown`` event, every watcher's stream ends after it, each
        unfinished run is logged, and the store is closed. Calling it again returns the same
        report. Defaults: the App's ``grace`` and ``shutdown_timeout``.
        """
        if self._coordinator is None:
            raise RuntimeError("this App was never started")
        report = await self._coordinator.shutdown(
            self.grace if grace is None else grace,
            self.shutdown_timeout if timeout is None else timeout,
        )
        # After the engine's stop began (it refuses new runs at once, so a tick firing now
        # starts nothing), and before the store closes.
        if self._scheduler is not None:
            await self._scheduler.close()
        if self._pruner is not None:
            await self._pruner.close()
        if not self.stopped:
            self.stopped = True
            try:
                await self.resources.close(
                    timeout=self.shutdown_timeout if timeout is None else timeout
                )
            finally:
                await self.store.close()
        return report

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    def _running(self) -> Coordinator:
        if self._coordinator is None:
            raise ShuttingDown("this App is not started: use `async with app:` or app.start()")
        return self._coordinator

    @property
    def accepting(self) -> bool:
        """True while the app takes new runs (started, not shutting down)."""
        return self._coordinator is not None and self._coordinator.accepting

    def when_stopping(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` once, the moment shutdown begins (at once if it has begun).

        For readers that should stop what can wait when the app stops, such as an event stream
        still replaying history (the server cuts it short; the client resumes elsewhere). It runs
        on the event loop and must be quick and not raise. Returns a function that unsubscribes.
        """
        return self._running().when_stopping(callback)

    def add_listener(self, listener: Callable[[Sequence[Event]], None]) -> None:
        """Call ``listener(events)`` with every batch of newly stored events, in order.

        For metrics and audit: it runs inside the commit path, so it must be quick and must not
        raise. Call it after ``start``.
        """
        if self._log is None:
            raise RuntimeError("add_listener needs a started App")
        self._log.add_listener(listener)

    async def count_runs(self) -> dict[tuple[str, RunState], int]:
        """How many runs the store holds, by ``(task, state)``."""
        return await self._running().store.count_runs()

    def stats(self) -> dict[str, int]:
        """Counts of this process at a glance: ``queued``, ``running``, ``watchers``, ``tasks``."""
        return self._running().stats()

    async def queue_counts(self) -> QueueCounts:
        """Runs queued and running, counted for whoever shares the work queue: this process
        (``memory://``, ``sqlite://``) or the whole deployment (Redis); ``scope`` says which."""
        return await self._running().queue_counts()

    @property
    def shared(self) -> bool:
        """True when several processes share this app's store and work queue (Redis): its
        counts and queue bound are the deployment's, and ``worker=False`` is possible."""
        return is_shared(self.store)

    # -- runs --------------------------------------------------------------------------------

    async def submit(self, task: str, /, **args: Any) -> Run:
        """Queue a run of ``task`` with ``args`` and return it (state ``queued``).

        Raises ``UnknownTask``, ``InvalidArguments`` (naming each bad parameter),
        ``NotSerializable``, ``QueueFull`` (retry later) or ``ShuttingDown``; nothing is stored
        then. For options (timeout, attempts, idempotency id) use ``submit_with``.
        """
        return await self.submit_with(task, args)

    async def submit_with(
        self,
        task: str,
        args: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        after: Sequence[str] | None = None,
        after_policy: str = "fail",
        run_at: datetime | None = None,
        delay: float | None = None,
        priority: int | None = None,
        owner: str | None = None,
        traceparent: str | None = None,
    ) -> Run:
        """``submit`` with options: a per-run ``timeout`` (seconds per attempt), ``max_attempts``
        (overrides the task's), and ``id``, an idempotency key: submitting an id that exists
        returns the existing run and queues nothing.

        ``run_at`` (a ``datetime`` with its offset) or ``delay`` (seconds): the run is
        ``scheduled`` until then (it holds no slot, can be cancelled), then ``queued``; a time
        that has passed starts it at once. At most a year ahead. ``priority``: 0 to 9, higher
        first (default: the task's), with ageing (``policies.rank``). Bad values raise
        ``InvalidRequest`` naming the field, and nothing is stored.

        ``after``: ids of runs this one waits for; it stays ``queued`` until each has ended,
        then starts if they all completed. If one failed, was cancelled or timed out, it fails
        with an error naming that one (``after_policy="fail"``), or starts anyway
        (``after_policy="always"``). Raises ``InvalidRequest`` naming an id no run has, or one
        that would make a cycle (possible only by re-using an ``id``).

        ``owner``: who submits it (``taskcast.owners``: 1 to 128 letters, digits and
        ``._~:@+-``); access control shows the run only to its owner and to viewers who may
        see all. ``traceparent``: the W3C trace context it continues (default: the current
        OpenTelemetry span's, see ``taskcast.tracing``). Bad values raise ``InvalidRequest``
        naming the field.
        """
        coordinator = self._running()
        definition = self.definition(task)
        run = await coordinator.submit(
            definition,
            args or {},
            run_id=id,
            timeout=timeout,
            max_attempts=max_attempts,
            after=after,
            after_policy=after_policy,
            run_at=run_at,
            delay=delay,
            priority=priority,
            owner=owner,
            traceparent=traceparent,
        )
        return run.copy()  # the coordinator keeps its own; the caller may change this one

    async def submit_many(
        self,
        task: str,
        many_args: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        run_at: datetime | None = None,
        delay: float | None = None,
        priority: int | None = None,
        owner: str | None = None,
    ) -> list[Run]:
        """Queue one run of ``task`` per mapping in ``many_args``; return them, in order.

        All or nothing: every mapping is validated first (``InvalidArguments`` names the index,
        e.g. ``[3].n``), and ``QueueFull`` is raised unless the queue has room for them all.
        The runs are stored together (for SQLite, one commit), which makes this the fast way to
        queue many runs at once. ``timeout``, ``max_attempts``, ``run_at`` or ``delay``, and
        ``priority`` and ``owner`` apply to each run (see ``submit_with``).
        """
        coordinator = self._running()
        definition = self.definition(task)
        runs = await coordinator.submit_many(
            definition,
            many_args,
            timeout=timeout,
            max_attempts=max_attempts,
            run_at=run_at,
            delay=delay,
            priority=priority,
            owner=owner,
        )
        return [run.copy() for run in runs]

    async def get(self, run_id: str) -> Run:
        """The run as stored, with ``waiting_for`` saying why it does not start yet when a limit
        holds it (``"rate_limit"``, ``"concurrency"``, ``"dependencies"``). Raises
        ``RunNotFound``."""
        coordinator = self._running()
        run = await coordinator.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.waiting_for is None and run.state is RunState.QUEUED:
            run.waiting_for = coordinator.waiting_reason(run_id)
        return run

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        """The durable calls the run recorded (``ctx.step``, ``ctx.sleep``, ``ctx.signal``), in
        log order: ``index``, ``kind``, ``name``, ``state`` (``completed`` or ``failed``, with
        ``error``), ``attempt`` (the one that ran it), ``tries``, ``started_at`` and
        ``finished_at`` (Unix time; a sleep's wake-up time), ``duration``, ``replayed`` (a later
        attempt got it back without running it) and ``seq``. Raises ``RunNotFound``."""
        run = await self.get(run_id)
        store = self._running().store
        records: list[Event] = []
        after = 0
        while True:
            page = await store.read_events_of_type(run_id, events.STEP, after, 1000)
            records.extend(page)
            if len(page) < 1000:
                break
            after = page[-1].seq
        return timeline(records, run.attempt)

    async def runs(
        self,
        *,
        state: RunState | str | None = None,
        task: str | None = None,
        limit: int = 100,
        before: str | None = None,
        parent: str | None = None,
        prefix: str | None = None,
        owner: str | None = None,
    ) -> list[Run]:
        """Runs newest first, filtered by ``state``, ``task``, ``parent`` (the children of
        that run), ``prefix`` (ids that start with it) and ``owner``; page with
        ``before=<last id>``.

        The ``owner`` filter reads the store's pages newest first and keeps that owner's runs
        until ``limit`` are found or the store has no more: its cost follows the runs newer
        than the page's last, not that owner's."""
        if state is not None and not isinstance(state, RunState):
            try:
                state = RunState(state)
            except ValueError:
                allowed = ", ".join(s.value for s in RunState)
                raise InvalidRequest(f"unknown state {state!r}; use one of {allowed}") from None
        if not 1 <= limit <= 1000:
            raise InvalidRequest(f"limit must be between 1 and 1000, got {limit}")
        if prefix is not None and not is_run_id(prefix):
            raise InvalidRequest(
                f"prefix must be the start of a run id (letters, digits and ._~:-), got {prefix!r}",
                param="prefix",
            )
        store = self._running().store
        check_owner(owner)
        if owner is None:
            return await store.list_runs(
                state=state, task=task, limit=limit, before=before, parent=parent, prefix=prefix
            )
        found: list[Run] = []
        while len(found) < limit:
            page = await store.list_runs(
                state=state, task=task, limit=1000, before=before, parent=parent, prefix=prefix
            )
            found.extend(run for run in page if run.owner == owner)
            if len(page) < 1000:
                break
            before = page[-1].id
        return found[:limit]

    def event_batches(self, run_id: str, after: int = 0) -> AsyncGenerator[list[Event], None]:
        """Like ``events`` but yields lists of events (what is available at once)."""
        return self._running().log.batches(run_id, check_cursor(after))

    def events(self, run_id: str, after: int = 0) -> AsyncGenerator[Event, None]:
        """The run's events with ``seq > after``: the stored log, then live ones as they come.

        Ends after the terminal event, or after ``shutdown`` when the app shuts down. Raises
        ``RunNotFound`` (on the first iteration), and ``InvalidRequest`` (at once) for an
        ``after`` that is not an integer from 0 to ``cursors.MAX_SEQ``. Reading never slows the
        run: a slow reader falls behind and catches up from the store. Close it
        (``contextlib.aclosing``) if you stop reading early.
        """
        return self._running().log.events(run_id, check_cursor(after))

    async def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a queued or running run. True if the run will end ``cancelled``.

        False for an unknown or finished run, or one already past cancelling (its terminal write
        is under way). A running run gets ``CancelledError`` in its body, so its cleanup runs;
        ``cancelled`` is written once that is done. Calling it again is harmless. Returns without
        waiting for the run to end: use ``wait`` for that.
        """
        return (await self.request_cancel(run_id, reason)).accepted

    async def request_cancel(self, run_id: str, reason: str = "cancelled") -> CancelAnswer:
        """``cancel``, answering why not when the run will not end ``cancelled``: it is unknown
        (not ``found``), finished (its terminal ``state``), or ending another way right now
        (its end is being written: ``wait`` names it). For callers that must tell those apart
        without reading the run again, such as ``POST /runs/{id}/cancel`` (404 or 409)."""
        return await self._running().request_cancel(run_id, reason)

    async def signal(self, run_id: str, name: str, data: Any = None) -> None:
        """Send the signal ``name`` with JSON ``data`` to a queued or running run.

        It is logged as a ``signal`` event and handed to ``ctx.signal(name)``. Raises
        ``RunNotFound``, ``RunFinished``, ``InvalidRequest``, ``NotSerializable`` or
        ``TooManySignals`` (the run holds as many signals as it may: retry later).
        """
        await self._running().signal(run_id, name, data)

    async def wait(self, run_id: str, timeout: float | None = None) -> Run:
        """Wait until the run finishes and return it as stored.

        Raises ``RunNotFound``, ``InvalidRequest`` for a ``timeout`` that is not finite and
        positive (at most 30 days), and ``TimeoutError`` after ``timeout`` seconds. If the app
        shuts down first, returns the run as it was left (e.g. ``interrupted``).
        """
        check_timeout(timeout)
        run = await self.get(run_id)
        if run.is_finished:
            return run
        async with (
            asyncio.timeout(timeout),
            contextlib.aclosing(self.event_batches(run_id, after=run.last_seq)) as batches,
        ):
            async for _ in batches:
                pass
        return await self.get(run_id)

    # -- schedules ---------------------------------------------------------------------------

    def _schedule(self, name: str) -> tuple[Scheduler, Schedule]:
        self._running()
        if self._scheduler is None:
            raise ShuttingDown("this App is not started: use `async with app:` or app.start()")
        schedule = self.schedules.get(name)
        if schedule is None:
            raise UnknownSchedule(name, list(self.schedules))
        return self._scheduler, schedule

    async def schedule_info(self, name: str | None = None) -> list[dict[str, Any]]:
        """The registered schedules (or the one named) as JSON: definition, ``paused``,
        ``next_tick``, ``last_tick``, ``last_run`` (times are Unix seconds). Raises
        ``UnknownSchedule``."""
        names = list(self.schedules) if name is None else [name]
        found = []
        for each in names:
            scheduler, schedule = self._schedule(each)
            found.append(await scheduler.describe(schedule))
        return found

    async def pause_schedule(self, name: str) -> None:
        """Stop starting runs at ``name``'s ticks, in every process sharing the store (ticks
        passing meanwhile are skipped). Raises ``UnknownSchedule``."""
        scheduler, schedule = self._schedule(name)
        await scheduler.set_paused(schedule, True)

    async def resume_schedule(self, name: str) -> None:
        """Start runs at ``name``'s ticks again, from the next one. Raises
        ``UnknownSchedule``."""
        scheduler, schedule = self._schedule(name)
        await scheduler.set_paused(schedule, False)

    async def trigger_schedule(self, name: str) -> Run:
        """Start a run of ``name`` now, out of turn (even while paused); returns it. Raises
        ``UnknownSchedule`` and what ``submit`` raises."""
        scheduler, schedule = self._schedule(name)
        return (await scheduler.trigger(schedule)).copy()

    def time_counts(self) -> dict[str, Any]:
        """What the time-and-order machinery did in this process: ``ticks_started`` and
        ``ticks_skipped`` by schedule, ``runs_pruned``."""
        scheduler, pruner = self._scheduler, self._pruner
        return {
            "ticks_started": dict(scheduler.started) if scheduler else {},
            "ticks_skipped": dict(scheduler.skipped) if scheduler else {},
            "runs_pruned": pruner.pruned if pruner else 0,
        }

    async def prune_now(self) -> int:
        """Run one retention pass now (``App(retention=...)`` does it in the background);
        returns how many finished runs it deleted."""
        self._running()
        assert self._pruner is not None
        return await self._pruner.prune()

    async def prune(self, older_than: float) -> int:
        """Delete finished runs that finished more than ``older_than`` seconds ago, with their
        logs. Returns how many were deleted."""
        if older_than < 0:
            raise InvalidRequest(f"older_than must be >= 0 seconds, got {older_than}")
        return await self._running().store.prune(time.time() - older_than)

    async def retry(self, run_id: str) -> Run:
        """Start a new run of the task of ``run_id`` with its arguments, timeout and attempts,
        linked to it by ``retry_of``; return the new run (``queued``). The old run is kept.

        Only a run that failed, was cancelled, timed out or was interrupted can be retried; an
        interrupted one is cancelled first (reason ``retried as a new run``), or it would be
        resumed as well. Workflow links (``parent_id``, ``after``) are not carried over: the
        new run stands alone. Raises ``RunNotFound``, ``NotRetryable`` (queued, running or
        completed), ``UnknownTask`` (its task is no longer registered here) and what
        ``submit`` raises (``QueueFull``, ``ShuttingDown``).
        """
        coordinator = self._running()
        old = await self.get(run_id)
        if old.state is RunState.INTERRUPTED:
            await self.cancel(run_id, RETRIED_REASON)
            old = await self.get(run_id)  # cancelled, or what it became meanwhile
        if old.state not in RETRYABLE_STATES:
            raise NotRetryable(run_id, old.state.value)
        run = await coordinator.submit(
            self.definition(old.task),
            old.args,
            timeout=old.timeout,
            max_attempts=old.max_attempts,
            retry_of=old.id,
            owner=old.owner,
        )
        return run.copy()

    async def activity(
        self, window: float = DEFAULT_WINDOW, step: float = DEFAULT_STEP
    ) -> Activity:
        """What happened in the last ``window`` seconds, in buckets of ``step`` seconds: runs
        created, started and finished (by end state) per bucket, runs queued and running at the
        end of each, and per task the p50, p95 and longest durations of the runs that finished
        (``taskcast.stats`` has the definitions). Buckets are aligned on multiples of ``step``;
        the last one holds the present.

        Its cost follows the runs of the window, not the store's size. Raises
        ``InvalidRequest`` naming ``window`` or ``step`` (each positive and finite, ``step``
        at least 1 s and at most ``window``, ``window`` at most 30 days, at most 1,440 buckets).
        """
        frame = Window.ending_at(time.time(), window, step)
        return await self._running().store.activity(frame)


RETRYABLE_STATES = frozenset(
    {RunState.FAILED, RunState.CANCELLED, RunState.TIMED_OUT, RunState.INTERRUPTED}
)
"""The states ``App.retry`` takes a run in."""

RETRIED_REASON = "retried as a new run"
"""The cancel reason of an interrupted run that ``App.retry`` replaces."""


def _where(function: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, to tell two functions of one name apart."""
    module = getattr(function, "__module__", None) or "?"
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"
