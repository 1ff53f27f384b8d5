"""Fan-out of one run's live events to every event stream that has caught up with it.

Reading the log once per *run* rather than once per *client* is what makes a thousand watchers
cheap: one ``Broadcast`` per watched run reads ``App.event_batches`` from its cursor (the same
way any watcher reads the log), encodes each batch once, as a ready HTTP chunk, and writes it
to each member's socket without waking the member's task. A member is a stream that has
replayed the log up to the broadcast's cursor by itself; it remembers the last seq it was sent,
so it never gets an event twice nor misses one.

Nothing queues per member: a write goes to the socket or into the transport's buffer. A member
whose buffer grows over ``MAX_BUFFERED`` is *behind*: it leaves the broadcast and its own task
takes over, waiting for the client to drain (or cutting it after the write deadline), then
catching up from the store and joining again.

The ``Hub`` owns the broadcasts' reader tasks (a ``Supervisor``); a broadcast ends with its run's
log (terminal event, or shutdown) or when its last member leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging

from ...app import App
from ...models import Event
from ...supervisor import Supervisor
from .transport import Transport
from .wire import chunk, encode_events

logger = logging.getLogger("taskcast.server")

MAX_BUFFERED = 64 * 1024
"""Bytes a member's socket may hold unsent before it is handed back to its own task."""

BATCH_INTERVAL = 0.002
"""Seconds a broadcast rests after each write: under a burst, what arrives meanwhile goes out
as one write per member instead of one per event. Idle runs see no delay at all."""


class Departure(enum.Enum):
    """Why a member is no longer fed by its broadcast."""

    ENDED = "ended"  # the log ended (terminal event or shutdown): everything was sent
    BEHIND = "behind"  # its socket buffer is full: its own task takes over
    GONE = "gone"  # the connection closed


class Member:
    """One stream fed by a broadcast: its transport, the last seq it was sent, and a future
    resolved with the ``Departure`` when the broadcast stops feeding it."""

    __slots__ = ("broadcast", "departed", "seq", "transport")

    def __init__(self, broadcast: Broadcast, transport: Transport, seq: int) -> None:
        self.broadcast = broadcast
        self.transport = transport
        self.seq = seq
        self.departed: asyncio.Future[Departure] = asyncio.get_running_loop().create_future()

    def depart(self, why: Departure) -> None:
        if not self.departed.done():
            self.departed.set_result(why)


class Broadcast:
    """The live events of one run, written to every member (see the module docstring)."""

    def __init__(self, hub: Hub, run_id: str, cursor: int) -> None:
        self._hub = hub
        self.run_id = run_id
        self.cursor = cursor
        self.members: set[Member] = set()
        self.closed = False

    async def run(self, app: App) -> None:
        """Read the log from the cursor and feed the members until the log ends."""
        ended = Departure.BEHIND  # if reading fails, each member reads on by itself
        try:
            batches = app.event_batches(self.run_id, after=self.cursor)
            # Closed on cancel too: the log counts this reader until its generator ends.
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    self._deliver(batch)
                    self.cursor = batch[-1].seq
                    await asyncio.sleep(BATCH_INTERVAL)
            ended = Departure.ENDED
        except asyncio.CancelledError:
            ended = Departure.GONE
            raise
        except Exception:
            logger.exception("the broadcast of run %s failed; its streams go on alone", self.run_id)
        finally:
            self.closed = True
            self._hub.forget(self)
            for member in self.members:
                member.depart(ended)
            self.members.clear()

    def _deliver(self, batch: list[Event]) -> None:
        first, last = batch[0].seq, batch[-1].seq
        encoded = chunk(encode_events(batch))
        for member in list(self.members):
            if member.seq >= last:
                continue
            transport = member.transport
            if transport.is_closing():
                self.leave(member, Departure.GONE)
                continue
            if member.seq >= first:  # it already has the start of this batch
                transport.write(chunk(encode_events([e for e in batch if e.seq > member.seq])))
            else:
                transport.write(encoded)
            member.seq = last
            if transport.get_write_buffer_size() > MAX_BUFFERED:
                logger.debug("a client of run %s fell behind at %d", self.run_id, member.seq)
                self.leave(member, Departure.BEHIND)

    def leave(self, member: Member, why: Departure) -> None:
        self.members.discard(member)
        member.depart(why)
        if not self.members and not self.closed:
            self.closed = True
            self._hub.stop(self)


class Hub:
    """The broadcasts of one server, by run id; owns their reader tasks."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._broadcasts: dict[str, Broadcast] = {}
        self._tasks: dict[Broadcast, asyncio.Task[None]] = {}
        self._supervisor = Supervisor()

    @property
    def member_count(self) -> int:
        """Streams fed by a broadcast now."""
        return sum(len(b.members) for b in self._broadcasts.values())

    @property
    def run_count(self) -> int:
        """Runs with a live broadcast now."""
        return len(self._broadcasts)

    def try_join(self, run_id: str, transport: Transport, seq: int) -> Member | None:
        """Make the stream at ``seq`` a member of the run's broadcast, starting one if needed.

        Returns ``None`` when the stream is behind the broadcast (it must read further by
        itself first) or the broadcast is ending.
        """
        broadcast = self._broadcasts.get(run_id)
        if broadcast is None:
            if self._supervisor.closed:
                return None
            broadcast = self._broadcasts[run_id] = Broadcast(self, run_id, seq)
            self._tasks[broadcast] = self._supervisor.spawn(
                broadcast.run(self._app), name=f"broadcast {run_id}"
            )
        elif broadcast.closed or seq < broadcast.cursor:
            return None
        member = Member(broadcast, transport, seq)
        broadcast.members.add(member)
        return member

    def leave(self, member: Member) -> None:
        """Stop feeding ``member`` (its stream is ending); harmless if it already left."""
        if member in member.broadcast.members:
            member.broadcast.leave(member, Departure.GONE)

    def forget(self, broadcast: Broadcast) -> None:
        """Drop a broadcast that ended (its reader is finishing)."""
        if self._broadcasts.get(broadcast.run_id) is broadcast:
            del self._broadcasts[broadcast.run_id]
        self._tasks.pop(broadcast, None)

    def stop(self, broadcast: Broadcast) -> None:
        """Cancel the reader of a broadcast nobody listens to any more."""
        task = self._tasks.get(broadcast)
        self.forget(broadcast)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Stop every broadcast and wait for their readers."""
        await self._supervisor.close(timeout=5)
        self._tasks.clear()
