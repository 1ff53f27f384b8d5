"""``RedisQueue``: the work queue every worker of a deployment shares, on Redis streams.

Layout: one stream per task, ``queue:TASK``, read by the consumer group ``workers``. The Redis
store adds a run's entry when it creates the run, in the same script (a run is never stored
without being queued; one submitted ``after`` others gets its entry when the last of them ends,
from the script that ends it); its terminal write acknowledges the entry in the same script too.
This queue does the rest, over the store's connection, writer and subscription:

* the **claim loop**: while the engine has room (``QueueOwner.room``: free slots, within the
  per-task limits of this process), one script (CLAIM) takes runs: new ones, and, every quarter
  of the visibility timeout, entries idle longer than ``visibility_timeout`` (the runs of dead
  workers); for a task with a ``concurrency``, only as many as it has free places in the whole
  deployment (*leases*, below). When there is nothing to take, the loop waits (``XREAD BLOCK``)
  for a new entry, or for a place to be freed. Each run taken is *adopted*: a run found
  ``running`` (its worker died mid-run) is recorded ``interrupted``, then, like an
  ``interrupted`` one, re-queued as a new attempt or failed when no attempt is left (the
  engine's recovery); a run with a cancel request pending is cancelled; signals already in its
  log are handed over; then the engine owns it;
* **leases**: a task's ``concurrency`` holds for the deployment. A run of such a task holds a
  place (``lease:TASK``, a sorted set scored by expiry) from its claim to its terminal write, or
  until it is handed back; the heartbeat renews it, so a dead worker's places expire with its
  visibility timeout. A parent that waits for its children lends its place (``lend``) and takes
  one back before it goes on (``take_back``), ahead of new runs;
* the **heartbeat**: every third of the visibility timeout one script resets the idle time of
  every entry this process still holds (``XCLAIM ... JUSTID``, only if it is still ours), renews
  their leases and returns the cancel requests pending for them (pub/sub is at-most-once: a
  reconnect loses messages, the heartbeat does not);
* **cancel and signals across processes**: a cancel for a run held elsewhere runs
  REQUEST_CANCEL (a queued run is cancelled by the script; a running one is flagged and its
  worker told on ``control``); a signal is a ``signal`` event of the run's log, published on
  ``control`` for whoever holds the run, and read again from the log (from a cursor per run)
  whenever the subscription was broken, so none is missed;
* **hand-back**: at shutdown every unfinished run this process holds goes back to its stream at
  once (RELEASE), so another worker takes it without waiting for the visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from .. import events
from ..errors import StoreError
from ..limits import MAX_PENDING_SIGNALS
from ..models import CancelAnswer, Event, Run, compact_json
from ..policies import AGEING
from ..runs import clock
from ..runs.ports import QueueCounts, QueueOwner
from ..states import RunState
from ..stores import redis_scripts as scripts
from ..stores.redis import Backoff, RedisStore, decode_run, private_field
from ..supervisor import Supervisor

logger = logging.getLogger("taskcast")

LOG_PAGE = 1000
"""Events read per page of a run's log (a claimed run's signals)."""

PROMOTE_BATCH = 1000
"""Runs one PROMOTE queues at most (then it runs again at once): other writes get a turn."""

CLAIM_WAIT = 1.0
"""Seconds the claim loop waits for news before it looks again (for dead workers' runs, and
places under a limit whose holder died)."""

# redis-py's errors do not derive from the builtin ConnectionError.
_UNREACHABLE: tuple[type[BaseException], ...] = (StoreError, ConnectionError, OSError, RedisError)


@dataclass(frozen=True, slots=True)
class Claim:
    """A run delivered to this worker: ``ticket`` identifies the delivery (its stream entry),
    ``cancel_reason`` is a cancel request recorded while the run's previous worker held it,
    ``lease`` the scope of the deployment-wide limit it holds a place under (or None)."""

    run: Run
    ticket: str
    cancel_reason: str | None = None
    lease: str | None = None


class _SignalCursor:
    """How far the signals in a held run's log were handed over: every one up to ``seq``, and
    those above it in ``seen`` (delivered by a message before the log was read that far)."""

    __slots__ = ("seen", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.seen: set[int] = set()

    def first_time(self, seq: int) -> bool:
        """True (and noted) unless the signal at ``seq`` was handed over already."""
        if seq <= self.seq or seq in self.seen:
            return False
        self.seen.add(seq)
        return True

    def read_up_to(self, seq: int) -> None:
        self.seq = max(self.seq, seq)
        self.seen = {s for s in self.seen if s > self.seq}


def _reraise_cancellation() -> None:
    """Raise CancelledError if this task is being cancelled: redis-py may swallow the cancellation
    of a blocking read (or turn it into a connection error), which must not keep a loop going."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisQueue:
    """The shared work queue of a Redis deployment (see the module docstring)."""

    shared = True

    def __init__(self, store: RedisStore, max_queue: int = 10_000) -> None:
        self._store = store
        store.max_queued = max_queue
        #: This process's name in the consumer group (host, pid, and a random part).
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._owner: QueueOwner | None = None
        self._supervisor = Supervisor()
        self._held: dict[str, str] = {}  # run id -> claim ticket
        self._leases: dict[str, str] = {}  # run id -> the scope it holds (or lent) a place in
        self._freed: dict[str, asyncio.Event] = {}  # scope -> set when a place was freed
        self._adopting: dict[str, list[Event]] = {}  # signals logged while a run is adopted
        self._cursors: dict[str, _SignalCursor] = {}  # signals handed over, per held run
        self._room = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._claiming: asyncio.Task[None] | None = None
        self._heartbeating: asyncio.Task[None] | None = None
        self._reading: frozenset[str] | None = None  # the tasks the wait in flight looks at
        self._nudging = False
        self._next_reclaim = 0.0
        self._turn = 0  # which task the claim serves first (rotates, so none starves)
        self._nudge_key = f"{store.prefix}nudge:{self.consumer}"
        self._due = asyncio.Event()  # a run was scheduled sooner than the promoter's next look
        self._next_due = 0.0
        self._scripts: dict[str, AsyncScript] = {}

    @property
    def max_queue(self) -> int:
        return self._store.max_queued or 0

    @max_queue.setter
    def max_queue(self, value: int) -> None:
        self._store.max_queued = value

    @property
    def held_count(self) -> int:
        """Runs this process holds from the queue (adopted and not yet finished)."""
        return len(self._held)

    @property
    def owner(self) -> QueueOwner:
        if self._owner is None:
            raise RuntimeError("the work queue is not started")
        return self._owner

    @property
    def _visibility_ms(self) -> int:
        return int(self._store.visibility_timeout * 1000)

    # -- the WorkQueue port -------------------------------------------------------------------

    async def start(self, owner: QueueOwner, *, take: bool = True) -> list[str]:
        """Start the claim loop and the heartbeat (``take=False``, an API node: neither). Runs
        are resumed by whichever worker claims them, never at start: returns []."""
        self._owner = owner
        client = self._store.client
        names = ("REQUEST_CANCEL", "HEARTBEAT", "RELEASE", "CLAIM", "LEND", "TAKE_BACK", "PROMOTE")
        for name in names:
            self._scripts[name] = client.register_script(getattr(scripts, name))
        if take:
            self._store.on_control(self._on_control)
            self._store.on_reconnected(self._reconnected)
            spawn = self._supervisor.spawn
            self._claiming = spawn(self._claim_forever(), name="taskcast claim loop")
            self._heartbeating = spawn(self._heartbeat_forever(), name="taskcast heartbeat")
            spawn(self._promote_forever(), name="taskcast promoter")
        return []

    def reserve(self, runs: Sequence[Run]) -> None:
        """Nothing to reserve: the bound is the store's (the create script counts the runs
        queued in all, and refuses beyond ``max_queue``)."""

    def unreserve(self, runs: Sequence[Run]) -> None:
        """Nothing was reserved (see ``reserve``)."""

    def accept(self, run: Run) -> None:
        """The store queued it (or holds it for its dependencies, and queues it when they end):
        make sure the claim loop looks at its task's stream (a task registered after ``start``
        is not among those the wait in flight looks at)."""
        self._room.set()
        if self._reading is not None and run.task not in self._reading:
            self._reading = None
            if not self._nudging and not self._supervisor.closed:
                self._nudging = True
                self._supervisor.spawn(self._nudge(), name="taskcast claim nudge")

    def room_freed(self) -> None:
        self._room.set()
        reading = self._reading
        if reading is None or self._nudging or self._supervisor.closed:
            return
        if any(task not in reading for task in self.owner.room()):
            # The wait in flight does not look at a task that has room now: wake it.
            self._reading = None
            self._nudging = True
            self._supervisor.spawn(self._nudge(), name="taskcast claim nudge")

    async def cancel(self, run_id: str, reason: str) -> CancelAnswer:
        """REQUEST_CANCEL: a queued (or held) or interrupted run is cancelled by the script; a
        running one is flagged ``_cancel`` (its worker records ``cancelled``; any other ending
        of it is turned into ``cancelled``) and its worker told on ``control``."""
        args = [self._store.prefix, run_id, reason, repr(time.time())]
        reply = await self._store.write(self._scripts["REQUEST_CANCEL"], args)
        if int(reply[0]) == -1:
            return CancelAnswer(False, found=False)
        if int(reply[0]) == 0:  # finished: the script says how
            return CancelAnswer(False, state=RunState(json.loads(reply[1])))
        return CancelAnswer(True)

    async def signal(self, run_id: str, name: str, data: Any) -> None:
        """Log the signal; whoever holds the run (this process or another) gets it from
        ``control``, or from the log when it adopts the run or its subscription comes back.
        The store counts the signals each run holds, in the same script, so the caps hold
        whichever node sends."""
        payload = {"name": name, "data": data}
        await self._store.append_signal(
            run_id,
            name,
            payload,
            compact_json(payload),
            most_of_name=MAX_PENDING_SIGNALS,
            most=self.owner.max_pending_signals,
        )

    def signal_taken(self, run_id: str, name: str) -> None:
        self._store.take_signal(run_id, name)

    async def lend(self, run_id: str) -> None:
        """The run waits for its children: free its place under its task's deployment-wide
        ``concurrency`` meanwhile (nothing to do for a task without one)."""
        if run_id in self._leases:
            await self._store.write(self._scripts["LEND"], [self._store.prefix, run_id])

    async def take_back(self, run_id: str) -> None:
        """Wait until the run holds a place under its task's deployment-wide ``concurrency``
        again, ahead of runs not yet started. If cancelled meanwhile, it takes one at once
        anyway (over the limit for a moment: the run is on its way out)."""
        scope = self._leases.get(run_id)
        if scope is None:
            return
        interval = self._store.visibility_timeout / 3
        try:
            while True:
                freed = self._freed.setdefault(scope, asyncio.Event())
                freed.clear()  # before asking: a place freed after the answer wakes us
                args = [self._store.prefix, run_id, self._visibility_ms, 0]
                if int(await self._store.write(self._scripts["TAKE_BACK"], args)):
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):  # the message may be lost: ask again
                        await freed.wait()
        except asyncio.CancelledError:
            self.take_back_at_once(run_id)
            raise

    def take_back_at_once(self, run_id: str) -> None:
        """Take the run's place back now, even over the limit (a waiting parent cancelled)."""
        if run_id in self._leases and not self._supervisor.closed:
            with contextlib.suppress(StoreError):
                args = [self._store.prefix, run_id, self._visibility_ms, 1]
                self._store.hand_over(self._scripts["TAKE_BACK"], args)

    async def stop_taking(self) -> None:
        """Take only what the engine still wants (``room``: during the shutdown's grace period,
        the children its running parents wait for); the runs held are kept, with their
        heartbeats, until ``hand_back``."""
        self._room.set()

    async def hand_back(self, unfinished: Sequence[str]) -> None:
        """Hand ``unfinished`` runs (and any other run still held) back to the queue at once,
        then stop heartbeating."""
        if self._claiming is not None:
            self._claiming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._claiming
            self._claiming = None
        # Every run still held: the unfinished ones, and any claimed but not yet adopted when
        # the claim loop stopped. The script skips those that finished (no queue entry left).
        handed = list(dict.fromkeys([*(r for r in unfinished if r in self._held), *self._held]))
        if handed:
            try:
                args = [self._store.prefix, self.consumer, *handed]
                count = int(await self._store.write(self._scripts["RELEASE"], args))
                logger.info("handed %d unfinished run(s) back to the queue", count)
            except _UNREACHABLE as exc:
                logger.error(
                    "could not hand %d run(s) back (%s); they return after the visibility timeout",
                    len(handed),
                    exc,
                )
        self._store.on_control(None)
        await self._supervisor.close(timeout=1.0)
        self._heartbeating = None
        self._held.clear()
        self._leases.clear()
        self._cursors.clear()

    async def counts(self) -> QueueCounts:
        """Queued and running runs of the whole deployment, from the store's counts."""
        counts = await self._store.count_runs()
        queued = sum(n for (_, state), n in counts.items() if state is RunState.QUEUED)
        running = sum(n for (_, state), n in counts.items() if state is RunState.RUNNING)
        scheduled = sum(n for (_, state), n in counts.items() if state is RunState.SCHEDULED)
        parked = int(await self._store.command("ZCARD", self._store.prefix + "parked"))
        return QueueCounts(queued, running, "deployment", scheduled, parked)

    # -- runs whose time came -----------------------------------------------------------------

    async def _promote_forever(self) -> None:
        """Queue the runs whose time came (PROMOTE: scheduled runs due, runs parked for their
        rate), whichever worker gets there first: the script moves each once. Sleeps until the
        next is due, at most ``CLAIM_WAIT``, and less when a ``due`` message says a run was
        scheduled sooner."""
        backoff = Backoff()
        while True:
            _reraise_cancellation()  # redis-py may swallow a cancellation on the way
            self._due.clear()
            try:
                queued, wait = await self._scripts["PROMOTE"](
                    args=[self._store.prefix, repr(clock.now()), repr(time.time()), PROMOTE_BATCH]
                )
            except _UNREACHABLE as exc:
                _reraise_cancellation()
                logger.warning("cannot queue the runs due (%s); retrying", exc)
                await backoff.wait()
                continue
            _reraise_cancellation()
            backoff.reset()
            if int(queued) >= PROMOTE_BATCH:
                continue  # more are due: at once
            next_due = float(wait)
            self._next_due = clock.now() + (next_due if next_due >= 0 else CLAIM_WAIT)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    min(CLAIM_WAIT, max(next_due, 0.0)) if next_due >= 0 else CLAIM_WAIT
                ):
                    await self._due.wait()

    def _on_due(self, run_at: float) -> None:
        """A run was scheduled for ``run_at``: wake the promoter if that is sooner than its
        next look."""
        if run_at < self._next_due:
            self._due.set()

    # -- claiming -----------------------------------------------------------------------------

    async def _claim_forever(self) -> None:
        backoff = Backoff()
        while True:
            _reraise_cancellation()  # see below: a cancel may have been swallowed on the way
            wanted = self.owner.room()
            if not wanted:
                self._room.clear()
                await self._room.wait()
                continue
            self._room.clear()
            try:
                claims, waits = await self._claim(wanted)
                if not claims:
                    await self._wait_for_news(waits, CLAIM_WAIT)
            except _UNREACHABLE as exc:
                _reraise_cancellation()
                logger.warning("cannot take runs from the store (%s); retrying", exc)
                await backoff.wait()
                continue
            _reraise_cancellation()
            backoff.reset()
            # Signals may be logged from the moment of the claim, and announced before the
            # runs are known here: listen for them now, then read what the logs hold so far
            # (one round trip for every claimed run).
            for claim in claims:
                self._adopting.setdefault(claim.run.id, [])
            try:
                logs = await self._store.read_logs([claim.run.id for claim in claims])
            except _UNREACHABLE:
                logs = {}
            for claim in claims:
                found = logs.get(claim.run.id)
                signals = None
                if found is not None and len(found) < LOG_PAGE:
                    last = found[-1].seq if found else 0
                    signals = ([e for e in found if e.type == events.SIGNAL], last)
                try:
                    await self._adopt(claim, signals)
                except _UNREACHABLE as exc:
                    # Not heartbeated any more: it returns to the queue after the timeout.
                    logger.warning("could not take run %s (%s)", claim.run.id, exc)
                    self._forget(claim.run.id)

    async def _claim(
        self, wanted: Mapping[str, int]
    ) -> tuple[list[Claim], list[tuple[bytes, bytes]]]:
        """Take up to ``wanted[task]`` runs per task (within its deployment-wide limit): new
        ones, and those whose worker stopped heartbeating for ``visibility_timeout``. Returns
        the claims, and, when there are none, the streams to wait on (key, last id)."""
        store = self._store
        owner = self.owner
        tasks = [task for task, count in wanted.items() if count > 0]
        if not tasks:
            return [], []
        self._turn = (self._turn + 1) % len(tasks)
        tasks = tasks[self._turn :] + tasks[: self._turn]
        for task in tasks:
            await store.ensure_group(task)  # the others are made by the runs queued in them
        now = time.monotonic()
        reclaim = now >= self._next_reclaim
        if reclaim:
            self._next_reclaim = now + store.visibility_timeout / 4
        args: list[Any] = [
            store.prefix,
            self.consumer,
            self._visibility_ms,
            1 if reclaim else 0,
            max(wanted.values()),
            self._nudge_key,
            int(AGEING * 1000),
        ]
        for task in tasks:
            admission = owner.admission(task)
            args.extend(
                (
                    task,
                    wanted[task],
                    owner.deployment_limit(task) or 0,
                    max(1, round(admission.rate_interval * 1e6)) if admission.rate_interval else 0,
                    admission.rate_key,
                    admission.rate_default,
                    admission.key,
                    admission.key_default,
                    admission.key_limit,
                )
            )
        raw_claims, raw_waits = await self._scripts["CLAIM"](args=args)
        claims = []
        for _task, entry_id, flat in raw_claims:
            claims.append(
                Claim(
                    decode_run(flat),
                    entry_id.decode(),
                    private_field(flat, b"_cancel"),
                    private_field(flat, b"_lease"),
                )
            )
        return claims, [(key, last) for key, last in raw_waits]

    async def _wait_for_news(self, waits: list[tuple[bytes, bytes]], wait: float) -> None:
        """Wait up to ``wait`` seconds for a new entry on any of ``waits`` (queues that were
        empty, ``freed`` streams of full tasks, this consumer's nudge stream)."""
        if not waits:
            return
        prefixes = [(self._store.prefix + kind).encode() for kind in ("queue", "freed:")]
        self._reading = frozenset(
            # queue:TASK, queue@N:TASK (a priority), freed:TASK
            key.removeprefix(prefix).partition(b":")[2].decode()
            if prefix.endswith(b"queue")
            else key.removeprefix(prefix).decode()
            for key, _ in waits
            for prefix in prefixes
            if key.startswith(prefix)
        )
        try:
            await self._store.command(
                "XREAD", "COUNT", 1, "BLOCK", max(int(wait * 1000), 1), "STREAMS",
                *(key for key, _ in waits), *(last for _, last in waits),
            )  # fmt: skip
        finally:
            self._reading = None

    async def _nudge(self) -> None:
        """Wake this process's claim loop from its wait (a stream of its own, one entry kept,
        gone a day after its last use)."""
        try:
            store = self._store
            async with store.client.pipeline(transaction=False) as pipe:
                pipe.execute_command("XADD", self._nudge_key, "MAXLEN", "1", "*", "n", "1")
                pipe.execute_command("EXPIRE", self._nudge_key, 86400)
                await pipe.execute()
        except _UNREACHABLE as exc:
            logger.debug("could not nudge the claim loop (%s)", exc)
        finally:
            self._nudging = False

    async def _adopt(self, claim: Claim, logs: tuple[list[Event], int] | None = None) -> None:
        """Take a claimed run over (see the module docstring). ``logs``: the signals of its log
        and the last seq read, read before (with ``_adopting`` already open for it)."""
        owner = self.owner
        run = claim.run
        self._held[run.id] = claim.ticket
        if claim.lease is not None:
            self._leases[run.id] = claim.lease
        self._adopting.setdefault(run.id, [])
        read_up_to = run.last_seq
        try:
            if run.state in (RunState.RUNNING, RunState.INTERRUPTED):
                if claim.cancel_reason is not None:  # asked while its worker was dying
                    await owner.cancel_in_store(run.id, claim.cancel_reason)
                    return
                if run.state is RunState.RUNNING:  # its worker died mid-run
                    lost = await owner.worker_lost(
                        run, "the worker running it stopped heartbeating"
                    )
                    if lost is None:
                        return
                    run = lost
                recovered = await owner.recover_interrupted(run)
                if recovered is None:
                    return
                run = recovered
            # Read even a run claimed with only its `queued` event: a signal logged since the
            # claim may have been announced before this run was in `_adopting` (and dropped);
            # it is in the log by now, and one logged later is announced into the buffer.
            logged: list[Event] = []
            read_up_to = run.last_seq
            if logs is not None:
                logged, read_up_to = logs
            else:
                logged, read_up_to = await self._signals_after(run.id, 0)
        finally:
            seen = self._adopting.pop(run.id)
        cursor = self._cursors[run.id] = _SignalCursor(read_up_to)
        signals = {event.seq: event for event in [*logged, *seen]}
        ordered = [signals[seq] for seq in sorted(signals)]
        for event in ordered:
            cursor.first_time(event.seq)
        cursor.read_up_to(read_up_to)
        owner.take_over(run, [_signal_of(e) for e in ordered])

    async def _signals_after(self, run_id: str, after: int) -> tuple[list[Event], int]:
        """The ``signal`` events of the run's log after ``after``, and the last seq read."""
        found: list[Event] = []
        while True:
            page = await self._store.read_events(run_id, after, LOG_PAGE)
            found.extend(event for event in page if event.type == events.SIGNAL)
            if page:
                after = page[-1].seq
            if len(page) < LOG_PAGE:
                return found, after

    def _forget(self, run_id: str) -> None:
        self._held.pop(run_id, None)
        self._leases.pop(run_id, None)
        self._cursors.pop(run_id, None)

    # -- messages -----------------------------------------------------------------------------

    def _on_control(self, kind: str, name: str, data: Any) -> None:
        if kind == "cancel":
            self._on_cancel_request(name, data)
        elif kind == "signal":
            self._on_signal(data)
        elif kind == "freed":
            freed = self._freed.get(name)
            if freed is not None:
                freed.set()
        elif kind == "due" and isinstance(data, int | float):
            self._on_due(float(data))

    def _on_signal(self, event: Event) -> None:
        buffer = self._adopting.get(event.run_id)
        if buffer is not None:
            buffer.append(event)
            return
        cursor = self._cursors.get(event.run_id)
        if cursor is not None and event.run_id in self._held and cursor.first_time(event.seq):
            self.owner.deliver_signal(event.run_id, *_signal_of(event))

    def _on_cancel_request(self, run_id: str, reason: str) -> None:
        if run_id in self._held and not self._supervisor.closed:
            self._supervisor.spawn(
                self._cancel_held(run_id, reason), name=f"taskcast cancel {run_id}"
            )

    async def _cancel_held(self, run_id: str, reason: str) -> None:
        try:
            await self.owner.cancel(run_id, reason)
        except _UNREACHABLE as exc:
            logger.warning("could not cancel run %s (%s); the heartbeat retries", run_id, exc)

    def _reconnected(self) -> None:
        """The subscription was broken: messages may have been missed. Re-check cancel
        requests (heartbeat), signals (from the logs) and freed places (ask again)."""
        self._beat_now.set()
        for freed in self._freed.values():
            freed.set()
        if self._cursors and not self._supervisor.closed:
            self._supervisor.spawn(self._reread_signals(), name="taskcast signals re-read")

    async def _reread_signals(self) -> None:
        """Hand over the signals logged for the held runs that no message brought."""
        for run_id, cursor in list(self._cursors.items()):
            try:
                logged, read_up_to = await self._signals_after(run_id, cursor.seq)
            except _UNREACHABLE as exc:
                logger.warning("could not re-read the signals of run %s (%s)", run_id, exc)
                continue
            if self._cursors.get(run_id) is not cursor:
                continue  # finished or handed back meanwhile
            for event in logged:
                if cursor.first_time(event.seq):
                    self.owner.deliver_signal(run_id, *_signal_of(event))
            cursor.read_up_to(read_up_to)

    # -- heartbeats ---------------------------------------------------------------------------

    async def _heartbeat_forever(self) -> None:
        interval = self._store.visibility_timeout / 3
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._beat_now.wait()
            self._beat_now.clear()
            owner = self.owner
            for run_id in [r for r in self._held if not owner.holds(r) and r not in self._adopting]:
                self._forget(run_id)  # finished: its terminal write acknowledged it
            try:
                lost, cancels = await self._heartbeat(dict(self._held))
            except _UNREACHABLE as exc:
                _reraise_cancellation()
                logger.warning("heartbeat failed (%s); retrying", exc)
                continue
            _reraise_cancellation()
            for run_id in lost:
                if run_id in self._held and owner.holds(run_id):
                    logger.warning(
                        "run %s was handed to another worker (missed heartbeats?)", run_id
                    )
                self._forget(run_id)
            for run_id, reason in cancels.items():
                self._on_cancel_request(run_id, reason)
            for freed in self._freed.values():  # a "freed" message may have been lost
                freed.set()

    async def _heartbeat(self, held: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """Keep ``held`` (run id -> ticket) from being delivered to another worker, and their
        places under limits from expiring; returns the runs this process no longer holds and
        the cancel requests for those it does."""
        if not held:
            return [], {}
        args: list[Any] = [self._store.prefix, self.consumer, self._visibility_ms]
        for run_id, ticket in held.items():
            args.append(run_id)
            args.append(ticket)
        lost, cancels = await self._scripts["HEARTBEAT"](args=args)
        return (
            [raw.decode() for raw in lost],
            {pair[0].decode(): pair[1].decode() for pair in cancels},
        )


def _signal_of(event: Event) -> tuple[str, Any]:
    """``(name, data)`` of a ``signal`` event."""
    data = event.data if isinstance(event.data, dict) else {}
    return str(data.get("name", "")), data.get("data")
