"""The worker side of a shared store: take runs from its queue, keep them, give them back.

A ``QueueConsumer`` belongs to one coordinator whose store is shared (``Store.shared``). It runs
two tasks owned by the coordinator's ``Supervisor``:

* the **claim loop**: while the coordinator has room (``Coordinator.room``: free slots, within
  the per-task limits of this process), it takes runs with ``Store.claim`` (new ones, and those of
  dead workers once their visibility timeout expired) and *adopts* them: a run found
  ``running`` (its worker died mid-run) is recorded ``interrupted``, then, like an ``interrupted``
  one, re-queued as a new attempt or failed when no attempt is left (``Coordinator``'s recovery);
  a run with a cancel request pending is cancelled; signals already in its log are handed over;
  then the coordinator queues it as its own;
* the **heartbeat**: every third of the visibility timeout it tells the store which runs this
  process still holds (so they are not re-delivered while it lives) and learns of cancel
  requests it may have missed (pub/sub is at-most-once: a reconnect loses messages).

Cancel requests and signals (a signal is an event of the run's log) also arrive at once through
the store's control listener. ``stop`` hands every run that did not
finish back to the queue at once, so a worker that shuts down never leaves runs waiting for a
visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import StoreError
from .models import Event
from .states import RunState
from .stores.base import Claim
from .supervisor import Supervisor

if TYPE_CHECKING:
    from .coordinator import Coordinator

logger = logging.getLogger("taskcast")

CLAIM_WAIT = 1.0
"""Seconds one claim waits for new runs before it looks again (for dead workers' runs)."""

_BACKOFF_MAX = 1.0
_UNREACHABLE: tuple[type[BaseException], ...] = (StoreError, ConnectionError, OSError)
try:  # redis-py's errors do not derive from the builtin ConnectionError
    from redis.exceptions import RedisError

    _UNREACHABLE = (*_UNREACHABLE, RedisError)
except ImportError:  # pragma: no cover - redis is an optional dependency
    pass


def _reraise_cancellation() -> None:
    """Raise CancelledError if this task is being cancelled: redis-py may swallow the cancellation
    of a blocking read (or turn it into a connection error), which must not keep a loop going."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class QueueConsumer:
    """Takes runs from a shared store for one coordinator (see the module docstring)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator
        self._store = coordinator.store
        self._held: dict[str, str] = {}  # run id -> claim ticket
        self._adopting: dict[str, list[Event]] = {}  # signals logged while a run is adopted
        self._room = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._claiming: asyncio.Task[None] | None = None
        self._heartbeating: asyncio.Task[None] | None = None
        self._supervisor: Supervisor | None = None
        self._reading: frozenset[str] | None = None  # the tasks the claim in flight waits for

    @property
    def held_count(self) -> int:
        """Runs this process holds from the queue (adopted and not yet finished)."""
        return len(self._held)

    def start(self, supervisor: Supervisor) -> None:
        """Start the claim loop and the heartbeat as tasks owned by ``supervisor``."""
        self._supervisor = supervisor
        self._store.set_control_listener(self._on_control)
        self._store.on_reconnected(self._beat_now.set)  # messages were maybe missed: re-check
        self._claiming = supervisor.spawn(self._claim_forever(), name="taskcast claim loop")
        self._heartbeating = supervisor.spawn(self._heartbeat_forever(), name="taskcast heartbeat")

    def wake(self) -> None:
        """The coordinator has room again: claim more."""
        self._room.set()

    async def notice_task(self, task: str) -> None:
        """A run of ``task`` was just queued: make sure the claim loop looks at its queue (a
        task registered after ``start`` is not in the claim waiting now)."""
        self._room.set()
        if self._reading is not None and task not in self._reading:
            self._reading = None
            await self._store.interrupt_claim()

    async def stop_claiming(self) -> None:
        """Take no more runs (the runs held are kept, with their heartbeats)."""
        if self._claiming is not None:
            self._claiming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._claiming
            self._claiming = None

    async def stop(self, unfinished: Sequence[str]) -> None:
        """Hand ``unfinished`` runs (and any other run still held) back to the queue at once,
        then stop heartbeating."""
        await self.stop_claiming()
        # Every run still held: the unfinished ones, and any claimed but not yet adopted when
        # the claim loop stopped. The store skips those that finished (no queue entry left).
        handed = list(dict.fromkeys([*(r for r in unfinished if r in self._held), *self._held]))
        if handed:
            try:
                count = await self._store.release(handed)
                logger.info("handed %d unfinished run(s) back to the queue", count)
            except _UNREACHABLE as exc:
                logger.error(
                    "could not hand %d run(s) back (%s); they return after the visibility timeout",
                    len(handed),
                    exc,
                )
        if self._heartbeating is not None:
            self._heartbeating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeating
            self._heartbeating = None
        self._store.set_control_listener(None)
        self._held.clear()

    # -- claiming -----------------------------------------------------------------------------

    async def _claim_forever(self) -> None:
        backoff = 0.05
        while True:
            _reraise_cancellation()  # see below: a cancel may have been swallowed on the way
            wanted = self._coordinator.room()
            if not wanted:
                self._room.clear()
                await self._room.wait()
                continue
            self._reading = frozenset(wanted)
            try:
                claims = await self._store.claim(wanted, CLAIM_WAIT)
            except _UNREACHABLE as exc:
                _reraise_cancellation()
                logger.warning("cannot take runs from the store (%s); retrying", exc)
                await asyncio.sleep(backoff)  # reconnect backoff, not synchronisation
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            finally:
                self._reading = None
            _reraise_cancellation()
            backoff = 0.05
            for claim in claims:
                try:
                    await self._adopt(claim)
                except _UNREACHABLE as exc:
                    # Not heartbeated any more: it returns to the queue after the timeout.
                    logger.warning("could not take run %s (%s)", claim.run.id, exc)
                    self._held.pop(claim.run.id, None)

    async def _adopt(self, claim: Claim) -> None:
        coordinator = self._coordinator
        run = claim.run
        self._held[run.id] = claim.ticket
        self._adopting[run.id] = []
        try:
            if run.state in (RunState.RUNNING, RunState.INTERRUPTED):
                if claim.cancel_reason is not None:  # asked while its worker was dying
                    await coordinator._cancel_in_store(run.id, claim.cancel_reason)
                    return
                if run.state is RunState.RUNNING:  # its worker died mid-run
                    moved = await self._store.transition(
                        run.id,
                        RunState.INTERRUPTED,
                        "interrupted",
                        {
                            "reason": "the worker running it stopped heartbeating",
                            "state": "interrupted",
                        },
                    )
                    if moved is None:
                        return
                    run = moved[0]
                recovered = await coordinator._recover_interrupted(run)
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
                logged.extend(event for event in page if event.type == "signal")
                if len(page) < 1000:
                    break
                after = page[-1].seq
        finally:
            seen = self._adopting.pop(run.id)
        signals = {event.seq: event for event in [*logged, *seen]}
        ordered = [signals[seq] for seq in sorted(signals)]
        coordinator.take_over(run, [(e.data["name"], e.data.get("data")) for e in ordered])

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
            self._coordinator.deliver_signal(
                event.run_id, event.data.get("name", ""), event.data.get("data")
            )

    def _on_cancel_request(self, run_id: str, reason: str) -> None:
        if run_id in self._held and self._supervisor is not None and not self._supervisor.closed:
            self._supervisor.spawn(self._cancel(run_id, reason), name=f"taskcast cancel {run_id}")

    async def _cancel(self, run_id: str, reason: str) -> None:
        try:
            await self._coordinator.cancel(run_id, reason)
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
            active = self._coordinator._active
            for run_id in [r for r in self._held if r not in active and r not in self._adopting]:
                del self._held[run_id]  # finished: its terminal write acknowledged it
            try:
                reply = await self._store.heartbeat(dict(self._held))
            except _UNREACHABLE as exc:
                _reraise_cancellation()
                logger.warning("heartbeat failed (%s); retrying", exc)
                continue
            _reraise_cancellation()
            for run_id in reply.lost:
                if self._held.pop(run_id, None) is not None and run_id in active:
                    logger.warning(
                        "run %s was handed to another worker (missed heartbeats?)", run_id
                    )
            for run_id, reason in reply.cancels.items():
                self._on_cancel_request(run_id, reason)
