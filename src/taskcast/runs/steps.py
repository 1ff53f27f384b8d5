"""Durable steps: ``ctx.step``, ``ctx.sleep`` and the signals ``ctx.signal`` took, replayed from
the run's log when its body runs again (docs/semantics.md, "Durable steps").

Every durable call of an attempt takes the next *position* (0, 1, 2 ...), in the order the body
makes them. When it is done, a ``step`` event records it in the run's log, written durably by
the same path as every event: ``{"kind", "name", "index", "result"}`` for a step that returned
(``"error"`` for one that failed for good; ``"wake_at"`` for a sleep, written as it begins).
When the body runs again (resumed after a stop or a crash, retried, re-delivered on Redis, or a
new run made by ``App.retry``, which reads the run it retries), a call at a position the log
holds returns what is recorded without doing the work again; the first position without a
record runs for real. A recorded position asked for by a call of another kind or name is not
the same program: ``StepMismatch``, and the run fails (it is never retried).

Events of the run's own emitted while a body replays are compared with those the earlier
attempts emitted at the same place (after the same position, in order): an event of the same
type and data is in the log already and is not written again (its recorded ``Event`` is
returned); the first that differs, and the rest up to the next position, are written. This
holds only for runs that recorded steps: a body without any runs again as it always did.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import events
from ..errors import InvalidRequest, StepMismatch
from ..limits import check_timeout
from ..models import Event, compact_json, encode_json
from ..names import check_signal_name, name_error
from ..tasks import RetryPolicy
from . import clock
from .active import ActiveRun
from .ports import RunServices

STEP = "step"
SLEEP = "sleep"
SIGNAL = "signal"
KINDS = (STEP, SLEEP, SIGNAL)
"""What a durable call may be: a step of work, a sleep, or a signal taken."""

LOG_PAGE = 1000
"""Events read per page of a run's log when its journal is loaded."""

MAX_RETRY_CHAIN = 32
"""How many runs back ``App.retry`` links are followed for recorded steps."""


@dataclass(slots=True)
class Journal:
    """What the earlier attempts (and the runs this one retries) recorded.

    ``records``: the successful record at each position. ``emitted``: per place (1 + the last
    position recorded before it, 0 before any), the events of the run's own in log order.
    """

    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    emitted: dict[int, deque[Event]] = field(default_factory=dict)


def _position(event: Event) -> int | None:
    """The position a ``step`` event records, or None for any other event."""
    data = event.data
    if event.type == events.STEP and isinstance(data, dict):
        index = data.get("index")
        if isinstance(index, int):
            return index
    return None


async def _read_log(
    services: RunServices, run_id: str, keep: Callable[[Event], bool]
) -> list[Event]:
    """The events of the run's log that ``keep`` accepts, in order, read page by page."""
    kept: list[Event] = []
    after = 0
    while True:
        page = await services.read_events(run_id, after, LOG_PAGE)
        kept.extend(event for event in page if keep(event))
        if len(page) < LOG_PAGE:
            return kept
        after = page[-1].seq


async def load_journal(services: RunServices, run_id: str, retry_of: str | None) -> Journal:
    """Read the run's log (and, through ``retry_of``, the logs of the runs it retries, for
    their records only) into a ``Journal``."""
    journal = Journal()
    place = 0
    own = await _read_log(
        services,
        run_id,
        lambda e: e.type == events.STEP or e.type not in events.RESERVED_EVENT_TYPES,
    )
    for event in own:
        index = _position(event)
        if index is not None:
            if "error" not in event.data:
                journal.records[index] = event.data
            place = index + 1
        elif event.type != events.STEP:
            journal.emitted.setdefault(place, deque()).append(event)
    earlier, hops = retry_of, 0
    while earlier is not None and hops < MAX_RETRY_CHAIN:
        hops += 1
        for event in await _read_log(services, earlier, lambda e: e.type == events.STEP):
            index = _position(event)
            if index is not None and "error" not in event.data:
                journal.records.setdefault(index, event.data)  # this run's own come first
        run = await services.get_run(earlier)
        earlier = None if run is None else run.retry_of
    return journal


def _check_policy(retries: Any, backoff: Any) -> None:
    """``InvalidRequest`` naming ``retries`` or ``backoff`` when they are not a step policy."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidRequest(f"retries must be an integer >= 0, got {retries!r}", param="retries")
    if (
        isinstance(backoff, bool)
        or not isinstance(backoff, int | float)
        or not (math.isfinite(backoff) and backoff >= 0)
    ):
        raise InvalidRequest(
            f"backoff must be a number of seconds >= 0, got {backoff!r}", param="backoff"
        )


def _describe(kind: str, name: str) -> str:
    return f"a {kind} {name!r}" if kind != SLEEP else "a sleep"


class Steps:
    """The durable calls of one attempt (``Context`` makes it on first use)."""

    __slots__ = (
        "_active",
        "_journal",
        "_loading",
        "_mismatch",
        "_names",
        "_next",
        "_place",
        "_replaying",
        "_services",
    )

    def __init__(self, services: RunServices, active: ActiveRun) -> None:
        self._services = services
        self._active = active
        self._next = 0
        self._place = 0
        run = active.run
        # A first attempt of a run that retries none has no record to read.
        self._journal: Journal | None = (
            Journal() if run.attempt <= 1 and run.retry_of is None else None
        )
        self._loading: asyncio.Lock | None = None
        self._names: set[str] = set()  # step names checked already
        # Once a body has asked for another step than the one recorded, every durable call it
        # makes raises the same error: catching it cannot lead to mixed results.
        self._mismatch: StepMismatch | None = None
        self._replaying = run.attempt > 1

    @property
    def replaying(self) -> bool:
        """True while events may still be suppressed (see the module docstring)."""
        return self._replaying

    async def journal(self) -> Journal:
        """The journal, read from the store on first use."""
        journal = self._journal
        if journal is not None:
            return journal
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._journal is None:
                run = self._active.run
                self._journal = await load_journal(self._services, run.id, run.retry_of)
                if not self._journal.records:
                    self._replaying = False
                    self._journal.emitted.clear()
            return self._journal

    def _take_position(self) -> int:
        index = self._next
        self._next += 1
        return index

    def _reached(self, index: int) -> None:
        place = self._place
        if index + 1 > place:
            self._place = index + 1
            journal = self._journal
            if journal is not None and journal.emitted:
                for passed in range(place, index + 1):  # never compared again: let them go
                    journal.emitted.pop(passed, None)

    async def _recorded(self, index: int, kind: str, name: str) -> dict[str, Any] | None:
        if self._mismatch is not None:
            raise self._mismatch
        journal = await self.journal()
        record = journal.records.get(index)
        if record is None:
            return None
        if record.get("kind", STEP) != kind or record.get("name") != name:
            self._mismatch = StepMismatch(
                self._active.run.id,
                index,
                recorded=_describe(str(record.get("kind", STEP)), str(record.get("name"))),
                asked=_describe(kind, name),
            )
            raise self._mismatch
        return record

    async def _record(self, data: dict[str, Any]) -> Event:
        try:
            data_json = compact_json(data)
        except (TypeError, ValueError, RecursionError):  # say which step, as NotSerializable
            data_json = encode_json(data, f"the result of step {data['name']!r}")
        return await self._services.record(self._active.run.id, events.STEP, data, data_json)

    # -- ctx.emit while replaying ------------------------------------------------------------

    async def suppressed(self, type: str, data_json: str) -> Event | None:
        """The recorded event an emit of ``type`` with ``data_json`` repeats, here, or None
        (write it). See the module docstring for the rule."""
        journal = await self.journal()
        if not self._replaying:
            return None
        queue = journal.emitted.get(self._place)
        if not queue:
            return None
        recorded = queue[0]
        if recorded.type == type and recorded.data_json() == data_json:
            queue.popleft()
            return recorded
        queue.clear()  # the body differs here: everything up to the next position is new
        return None

    # -- ctx.step ----------------------------------------------------------------------------

    async def step(
        self,
        name: str,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: int,
        backoff: float,
    ) -> Any:
        """See ``Context.step``."""
        if not isinstance(name, str) or name not in self._names:
            problem = name_error(name, "a step name")
            if problem is not None:
                raise InvalidRequest(problem, param="name")
            self._names.add(name)
        if retries or backoff != 1.0:
            _check_policy(retries, backoff)
        if not callable(function):
            raise InvalidRequest(f"ctx.step needs a function to call, got {function!r}")
        index = self._next
        self._next = index + 1
        journal = self._journal
        if journal is None or journal.records or self._mismatch is not None:
            record = await self._recorded(index, STEP, name)
            if record is not None:
                self._reached(index)
                return record.get("result")
        started = clock.now()
        tries = 0
        while True:
            tries += 1
            try:
                result = await _call(function, args, kwargs)
            except Exception as exc:
                if tries <= retries:
                    await asyncio.sleep(RetryPolicy(retries, float(backoff)).delay(tries))
                    continue
                await self._record_failure(index, name, started, tries, exc)
                self._reached(index)
                raise
            break
        data = {
            "kind": STEP,
            "name": name,
            "index": index,
            "result": result,
            "attempt": self._active.run.attempt,
            "tries": tries,
            "started_at": started,
        }
        try:
            await self._record(data)
        finally:
            self._reached(index)
        return result

    async def _record_failure(
        self, index: int, name: str, started: float, tries: int, exc: BaseException
    ) -> None:
        from .outcomes import error_of  # the error as a run records it

        data = {
            "kind": STEP,
            "name": name,
            "index": index,
            "error": error_of(exc),
            "attempt": self._active.run.attempt,
            "tries": tries,
            "started_at": started,
        }
        await self._record(data)

    # -- ctx.sleep ---------------------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """See ``Context.sleep``."""
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not (math.isfinite(seconds) and seconds >= 0)
        ):
            raise InvalidRequest(
                f"seconds must be a finite number >= 0, got {seconds!r}", param="seconds"
            )
        check_timeout(float(seconds) or None, "seconds")
        index = self._take_position()
        record = await self._recorded(index, SLEEP, SLEEP)
        if record is None:
            now = clock.now()
            wake_at = now + float(seconds)
            await self._record(
                {
                    "kind": SLEEP,
                    "name": SLEEP,
                    "index": index,
                    "wake_at": wake_at,
                    "attempt": self._active.run.attempt,
                    "started_at": now,
                }
            )
        else:
            wake_at = float(record.get("wake_at", 0.0))
        left = clock.seconds_until(wake_at)
        if left > 0:
            # Asleep, the run holds no slot: another run may use it meanwhile.
            async with self._services.lending_slot(self._active):
                await asyncio.sleep(left)
        self._reached(index)

    # -- ctx.signal --------------------------------------------------------------------------

    async def signal(self, name: str, timeout: float | None) -> Any:
        """See ``Context.signal``."""
        check_signal_name(name)
        index = self._take_position()
        record = await self._recorded(index, SIGNAL, name)
        mailbox = self._active.mailbox
        if record is not None:
            # A queue that hands a resumed run every signal of its log (Redis) handed this one
            # too: it was taken already.
            mailbox.discard_from_log(name)
            self._reached(index)
            return record.get("result")
        started = clock.now()
        data = await mailbox.receive(name, timeout)
        self._services.signal_taken(self._active.run.id, name)
        await self._record(
            {
                "kind": SIGNAL,
                "name": name,
                "index": index,
                "result": data,
                "attempt": self._active.run.attempt,
                "started_at": started,
            }
        )
        self._reached(index)
        return data


async def _call(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``function``: a coroutine function on the loop, anything else in a worker thread
    (and what it returns awaited, if it is awaitable)."""
    code = getattr(function, "__code__", None)  # a plain ``async def``: told without ``inspect``
    if (code is not None and code.co_flags & inspect.CO_COROUTINE) or (
        inspect.iscoroutinefunction(function)
    ):
        return await function(*args, **kwargs)
    result = await asyncio.to_thread(function, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def timeline(records: list[Event], attempt: int) -> list[dict[str, Any]]:
    """What ``GET /runs/{id}`` lists of a run's durable calls, from its ``step`` events in log
    order, for a run at ``attempt``: one entry per record, with its times (Unix) and whether a
    later attempt got it back without running it (``replayed``)."""
    entries = []
    for event in records:
        data = event.data if isinstance(event.data, dict) else {}
        recorded_in = data.get("attempt")
        ran_in: int = recorded_in if isinstance(recorded_in, int) else attempt
        started = data.get("started_at")
        started = float(started) if isinstance(started, int | float) else event.at
        kind = str(data.get("kind", STEP))
        finished = event.at
        if kind == SLEEP and isinstance(data.get("wake_at"), int | float):
            finished = float(data["wake_at"])
        entry: dict[str, Any] = {
            "index": data.get("index"),
            "kind": kind,
            "name": str(data.get("name", "")),
            "state": "failed" if "error" in data else "completed",
            "attempt": ran_in,
            "tries": data.get("tries", 1),
            "started_at": started,
            "finished_at": finished,
            "duration": max(0.0, finished - started),
            "replayed": "error" not in data and ran_in < attempt,
            "seq": event.seq,
        }
        if "error" in data:
            entry["error"] = data["error"]
        entries.append(entry)
    return entries
