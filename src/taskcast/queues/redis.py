"""``RedisQueue``: the work queue every worker of a deployment shares, on Redis streams.

Layout: one stream per task, ``queue:TASK``, read by the consumer group ``workers``. The Redis
store adds a run's entry when it creates the run, in the same script (a run is never stored
without being queued); its terminal write acknowledges the entry in the same script too. This
queue does the rest, over the store's connection, writer and subscription:

* the **claim loop**: while the engine has room (``QueueOwner.room``: free slots, within the
  per-task limits of this process), it takes runs with ``XREADGROUP`` (new ones) and, every
  quarter of the visibility timeout, ``XAUTOCLAIM`` (entries idle longer than
  ``visibility_timeout``: the runs of dead workers), and *adopts* each: a run found ``running``
  (its worker died mid-run) is recorded ``interrupted``, then, like an ``interrupted`` one,
  re-queued as a new attempt or failed when no attempt is left (the engine's recovery); a run
  with a cancel request pending is cancelled; signals already in its log are handed over; then
  the engine owns it;
* the **heartbeat**: every third of the visibility timeout one script resets the idle time of
  every entry this process still holds (``XCLAIM ... JUSTID``, only if it is still ours) and
  returns the cancel requests pending for them (pub/sub is at-most-once: a reconnect loses
  messages, the heartbeat does not);
* **cancel and signals across processes**: a cancel for a run held elsewhere runs
  REQUEST_CANCEL (a queued run is cancelled by the script; a running one is flagged and its
  worker told on ``control``); a signal is a ``signal`` event of the run's log, published on
  ``control`` for whoever holds the run;
* **hand-back**: at shutdown every unfinished run this process holds goes back to its stream at
  once (RELEASE), so another worker takes it without waiting for the visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from .. import events
from ..errors import InvalidRequest, StoreError
from ..limits import MAX_PENDING_SIGNALS
from ..models import Event, Run, compact_json
from ..runs.ports import QueueCounts, QueueOwner
from ..states import RunState
from ..stores import redis_scripts as scripts
from ..stores.redis import Backoff, RedisStore, decode_run, private_field
from ..supervisor import Supervisor

logger = logging.getLogger("taskcast")

CLAIM_WAIT = 1.0
"""Seconds one claim waits for new runs before it looks again (for dead workers' runs)."""

# redis-py's errors do not derive from the builtin ConnectionError.
_UNREACHABLE: tuple[type[BaseException], ...] = (StoreError, ConnectionError, OSError, RedisError)


@dataclass(frozen=True, slots=True)
class Claim:
    """A run delivered to this worker: ``ticket`` identifies the delivery (its stream entry),
    ``cancel_reason`` is a cancel request recorded while the run's previous worker held it."""

    run: Run
    ticket: str
    cancel_reason: str | None = None


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
        self._adopting: dict[str, list[Event]] = {}  # signals logged while a run is adopted
        self._room = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._claiming: asyncio.Task[None] | None = None
        self._heartbeating: asyncio.Task[None] | None = None
        self._reading: frozenset[str] | None = None  # the tasks the claim in flight waits for
        self._next_reclaim = 0.0
        self._nudge_key = f"{store.prefix}nudge:{self.consumer}"
        self._nudge_ready = False
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

    # -- the WorkQueue port -------------------------------------------------------------------

    async def start(self, owner: QueueOwner, *, take: bool = True) -> list[str]:
        """Start the claim loop and the heartbeat (``take=False``, an API node: neither). Runs
        are resumed by whichever worker claims them, never at start: returns []."""
        self._owner = owner
        client = self._store.client
        for name in ("REQUEST_CANCEL", "HEARTBEAT", "RELEASE", "DROP_ENTRY"):
            self._scripts[name] = client.register_script(getattr(scripts, name))
        if take:
            self._store.on_control(self._on_control)
            self._store.on_reconnected(self._beat_now.set)  # messages maybe missed: re-check
            spawn = self._supervisor.spawn
            self._claiming = spawn(self._claim_forever(), name="taskcast claim loop")
            self._heartbeating = spawn(self._heartbeat_forever(), name="taskcast heartbeat")
        return []

    def reserve(self, runs: Sequence[Run]) -> None:
        """Refuse what this queue cannot take yet; its bound is the store's (the create script
        counts the runs queued in all)."""
        for run in runs:
            if run.parent_id is not None or run.after:
                raise InvalidRequest(
                    f"child runs and after= dependencies need a memory:// or sqlite:// store;"
                    f" {self._store.url!r} is shared by several processes, which workflows do"
                    " not support yet"
                )

    def unreserve(self, runs: Sequence[Run]) -> None:
        """Nothing was reserved (see ``reserve``)."""

    def accept(self, run: Run) -> None:
        """The store queued it; make sure the claim loop looks at its task's stream (a task
        registered after ``start`` is not among those the claim in flight waits for)."""
        self._room.set()
        if self._reading is not None and run.task not in self._reading:
            self._reading = None
            if self._nudge_ready and not self._supervisor.closed:
                self._supervisor.spawn(self._nudge(), name="taskcast claim nudge")

    async def _nudge(self) -> None:
        """Make the claim waiting in XREADGROUP return at once, to look at every stream."""
        try:
            await self._store.command("XADD", self._nudge_key, "MAXLEN", "1", "*", "nudge", "1")
        except _UNREACHABLE as exc:  # the claim looks again within CLAIM_WAIT anyway
            logger.warning("could not nudge the claim loop (%s)", exc)

    def room_freed(self) -> None:
        self._room.set()

    async def cancel(self, run_id: str, reason: str) -> bool:
        """REQUEST_CANCEL: a queued or interrupted run is cancelled by the script; a running
        one is flagged ``_cancel`` (its worker records ``cancelled``; any other ending of it is
        turned into ``cancelled``) and its worker told on ``control``."""
        now = time.time()
        args = [
            self._store.prefix,
            run_id,
            reason,
            repr(now),
            compact_json({"reason": reason}),
            compact_json({"type": "Cancelled", "message": reason}),
            compact_json(now),
        ]
        reply = await self._store.write(self._scripts["REQUEST_CANCEL"], args)
        return int(reply[0]) > 0

    async def signal(self, run_id: str, name: str, data: Any) -> None:
        """Log the signal; whoever holds the run (this process or another) gets it from
        ``control``, or from the log when it adopts the run. The store counts the signals each
        run holds, in the same script, so the caps hold whichever node sends."""
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

    async def stop_taking(self) -> None:
        """Take no more runs (the runs held are kept, with their heartbeats)."""
        if self._claiming is not None:
            self._claiming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._claiming
            self._claiming = None

    async def hand_back(self, unfinished: Sequence[str]) -> None:
        """Hand ``unfinished`` runs (and any other run still held) back to the queue at once,
        then stop heartbeating."""
        await self.stop_taking()
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

    async def counts(self) -> QueueCounts:
        """Queued and running runs of the whole deployment, from the store's counts."""
        counts = await self._store.count_runs()
        queued = sum(n for (_, state), n in counts.items() if state is RunState.QUEUED)
        running = sum(n for (_, state), n in counts.items() if state is RunState.RUNNING)
        return QueueCounts(queued, running, "deployment")

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
            self._reading = frozenset(wanted)
            try:
                claims = await self._claim(wanted, CLAIM_WAIT)
            except _UNREACHABLE as exc:
                _reraise_cancellation()
                logger.warning("cannot take runs from the store (%s); retrying", exc)
                await backoff.wait()
                continue
            finally:
                self._reading = None
            _reraise_cancellation()
            backoff.reset()
            for claim in claims:
                try:
                    await self._adopt(claim)
                except _UNREACHABLE as exc:
                    # Not heartbeated any more: it returns to the queue after the timeout.
                    logger.warning("could not take run %s (%s)", claim.run.id, exc)
                    self._held.pop(claim.run.id, None)

    async def _claim(self, wanted: Mapping[str, int], wait: float) -> list[Claim]:
        """Take up to ``wanted[task]`` runs per task: new ones, and those whose worker stopped
        heartbeating for ``visibility_timeout``. Waits up to ``wait`` seconds when there is
        nothing to take; returns [] then."""
        store = self._store
        tasks = [task for task, count in wanted.items() if count > 0]
        if not tasks:
            return []
        for task in tasks:
            await store.ensure_group(task)
        if not self._nudge_ready:
            # A stream of this consumer's own that ``accept`` writes to, so a claim waiting in
            # XREADGROUP returns (kept at one entry; gone a day after its last use).
            with contextlib.suppress(ResponseError):  # BUSYGROUP
                await store.command(
                    "XGROUP", "CREATE", self._nudge_key, scripts.GROUP, "$", "MKSTREAM"
                )
            await store.command("EXPIRE", self._nudge_key, 86400)
            self._nudge_ready = True
        count = max(1, -(-max(wanted.values()) // len(tasks)))
        entries: list[tuple[str, str, str]] = []  # (task, entry id, run id)
        now = time.monotonic()
        if now >= self._next_reclaim:
            self._next_reclaim = now + store.visibility_timeout / 4
            for task in tasks:
                reply = await store.command(
                    "XAUTOCLAIM",
                    store.prefix + "queue:" + task,
                    scripts.GROUP,
                    self.consumer,
                    int(store.visibility_timeout * 1000),
                    "0-0",
                    "COUNT",
                    wanted[task],
                )
                entries.extend(_entries(task, reply[1]))
        if not entries:
            keys = [store.prefix + "queue:" + task for task in tasks]
            keys.append(self._nudge_key)
            block = ["BLOCK", max(int(wait * 1000), 1)] if wait > 0 else []
            reply = await store.command(
                "XREADGROUP", "GROUP", scripts.GROUP, self.consumer, "COUNT", count, *block,
                "STREAMS", *keys, *([">"] * len(keys)),
            )  # fmt: skip
            for stream, stream_entries in reply or []:
                if stream.decode() == self._nudge_key:  # ``accept``: look again
                    nudges = [entry_id for entry_id, _ in stream_entries]
                    await store.command("XACK", self._nudge_key, scripts.GROUP, *nudges)
                    continue
                task = stream.decode().removeprefix(store.prefix + "queue:")
                entries.extend(_entries(task, stream_entries))
        return await self._resolve(entries)

    async def _resolve(self, entries: list[tuple[str, str, str]]) -> list[Claim]:
        """Turn queue entries into claims; drop entries with nothing left to run."""
        if not entries:
            return []
        store = self._store
        async with store.client.pipeline(transaction=False) as pipe:
            for _, _, run_id in entries:
                pipe.execute_command("HGETALL", store.run_key(run_id))
            records = await pipe.execute()
        claims = []
        for (task, entry_id, _), flat in zip(entries, records, strict=True):
            run = decode_run(flat) if flat else None
            if run is None or run.is_finished or private_field(flat, b"_qid") != entry_id:
                # Pruned, finished (its ack was lost with a worker) or a stale delivery.
                queue = store.prefix + "queue:" + task
                await self._scripts["DROP_ENTRY"](args=[store.prefix, queue, entry_id])
                continue
            claims.append(Claim(run, entry_id, private_field(flat, b"_cancel")))
        return claims

    async def _adopt(self, claim: Claim) -> None:
        owner = self.owner
        run = claim.run
        self._held[run.id] = claim.ticket
        self._adopting[run.id] = []
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
            after = 0
            while True:
                page = await self._store.read_events(run.id, after)
                logged.extend(event for event in page if event.type == events.SIGNAL)
                if len(page) < 1000:
                    break
                after = page[-1].seq
        finally:
            seen = self._adopting.pop(run.id)
        signals = {event.seq: event for event in [*logged, *seen]}
        ordered = [signals[seq] for seq in sorted(signals)]
        owner.take_over(run, [(e.data["name"], e.data.get("data")) for e in ordered])

    # -- messages -----------------------------------------------------------------------------

    def _on_control(self, kind: str, run_id: str, data: Any) -> None:
        if kind == "cancel":
            self._on_cancel_request(run_id, data)
        elif kind == "signal":
            self._on_signal(data)

    def _on_signal(self, event: Event) -> None:
        buffer = self._adopting.get(event.run_id)
        if buffer is not None:
            buffer.append(event)
        elif event.run_id in self._held and isinstance(event.data, dict):
            self.owner.deliver_signal(
                event.run_id, event.data.get("name", ""), event.data.get("data")
            )

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
                del self._held[run_id]  # finished: its terminal write acknowledged it
            try:
                lost, cancels = await self._heartbeat(dict(self._held))
            except _UNREACHABLE as exc:
                _reraise_cancellation()
                logger.warning("heartbeat failed (%s); retrying", exc)
                continue
            _reraise_cancellation()
            for run_id in lost:
                if self._held.pop(run_id, None) is not None and owner.holds(run_id):
                    logger.warning(
                        "run %s was handed to another worker (missed heartbeats?)", run_id
                    )
            for run_id, reason in cancels.items():
                self._on_cancel_request(run_id, reason)

    async def _heartbeat(self, held: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """Keep ``held`` (run id -> ticket) from being delivered to another worker; returns the
        runs this process no longer holds and the cancel requests for those it does."""
        if not held:
            return [], {}
        args: list[str] = [self._store.prefix, self.consumer]
        for run_id, ticket in held.items():
            args.append(run_id)
            args.append(ticket)
        lost, cancels = await self._scripts["HEARTBEAT"](args=args)
        return (
            [raw.decode() for raw in lost],
            {pair[0].decode(): pair[1].decode() for pair in cancels},
        )


def _entries(task: str, raw: Any) -> list[tuple[str, str, str]]:
    """``(task, entry id, run id)`` for each ``(id, {b"run": id})`` of a stream reply."""
    found = []
    for entry_id, fields in raw or []:
        if fields and b"run" in fields:
            found.append((task, entry_id.decode(), fields[b"run"].decode()))
    return found
