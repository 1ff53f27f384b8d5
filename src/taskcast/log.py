"""The event log as watchers see it: read from a cursor, then wait for what comes next.

There is one way for events to flow: the store commits an event and announces it (in ``seq``
order) to this log; the log keeps a short shared *tail* of recent events per watched run and wakes
that run's watchers; each watcher copies what lies after its own cursor. A watcher that falls
further behind than the tail reaches reads the store instead, in pages. So:

* watchers never slow the task (appending never waits for a watcher) nor each other;
* there is no per-watcher buffer: memory is one bounded tail per watched run;
* what a watcher sees is exactly what the store holds, in order, with no gap and no duplicate;
* watchers of one run that catch up together read each page of its log once: a read in flight
  is shared by every watcher asking for the same page, and full pages (which can no longer
  change: the log only grows at its end) stay cached per run while it is watched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Sequence

from .errors import RunNotFound, StoreError
from .models import Event
from .stores.base import Store

TAIL_SIZE = 1024
"""Events kept in memory per watched run; a watcher further behind reads the store."""

PAGE_SIZE = 1000
"""Events read from the store per page by a watcher that is catching up."""

CACHED_PAGES = 4
"""Full pages kept per watched run, most recently read first out last, for watchers that follow
each other closely through a long log (a reconnect storm): the 200th reader of a page does not
read the store again."""


class _Channel:
    """The shared state of one watched run: its recent events and its sleeping watchers.

    Appends schedule one wake-up per loop iteration at most: watchers woken after several
    appends read them all as one batch, which is what lets cursor readers beat queues.
    """

    __slots__ = ("pages", "reads", "resyncs", "tail", "waiters", "wake_scheduled", "watchers")

    def __init__(self) -> None:
        self.tail: deque[Event] = deque(maxlen=TAIL_SIZE)
        self.reads: dict[int, asyncio.Task[list[Event]]] = {}  # in flight, by cursor
        self.pages: OrderedDict[int, list[Event]] = OrderedDict()  # full pages, by cursor
        self.waiters: list[asyncio.Future[None]] = []
        self.wake_scheduled = False
        self.watchers = 0
        self.resyncs = 0  # bumped when announcements may have been missed: re-read the store

    def after(self, cursor: int) -> list[Event] | None:
        """Events after ``cursor`` from the tail; ``None`` if the tail does not reach back."""
        tail = self.tail
        if not tail or tail[-1].seq <= cursor:
            return []
        first = tail[0].seq
        if first > cursor + 1:
            return None
        start = cursor + 1 - first
        if start == 0:
            return list(tail)
        return [tail[i] for i in range(start, len(tail))]

    def ended_by(self, cursor: int) -> bool:
        """True if the tail ends with the run's terminal event, at or before ``cursor``: a
        watcher whose cursor is past the end of the log has nothing more to wait for."""
        tail = self.tail
        return bool(tail) and tail[-1].is_terminal and tail[-1].seq <= cursor

    def notify(self) -> None:
        if not self.wake_scheduled and self.waiters:
            self.wake_scheduled = True
            asyncio.get_running_loop().call_soon(self._wake)

    def _wake(self) -> None:
        self.wake_scheduled = False
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():  # a watcher cancelled while asleep leaves a cancelled future
                waiter.set_result(None)

    async def wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        await waiter

    async def page(self, store: Store, run_id: str, cursor: int) -> list[Event]:
        """The store's page of events after ``cursor``, read once for all who ask together.

        The read runs in its own task, so a watcher that is cancelled while it waits does not
        cancel it for the others; the page is the store's answer, shared, never mutated.
        """
        cached = self.pages.get(cursor)
        if cached is not None:
            self.pages.move_to_end(cursor)
            return cached
        read = self.reads.get(cursor)
        if read is None:
            read = asyncio.get_running_loop().create_task(
                store.read_events(run_id, cursor, PAGE_SIZE), name=f"taskcast-page {run_id}"
            )
            self.reads[cursor] = read
            read.add_done_callback(lambda done: self._page_read(cursor, done))
        return await asyncio.shield(read)

    def _page_read(self, cursor: int, read: asyncio.Task[list[Event]]) -> None:
        if self.reads.get(cursor) is read:
            del self.reads[cursor]
        if read.cancelled() or read.exception() is not None:
            return  # the waiters (if any are left) see the error; nothing is cached
        page = read.result()
        if len(page) == PAGE_SIZE and self.watchers:
            self.pages[cursor] = page
            while len(self.pages) > CACHED_PAGES:
                self.pages.popitem(last=False)

    def clear_pages(self) -> None:
        """Forget cached pages (the store may have been replaced under a resync)."""
        self.pages.clear()


class EventLog:
    """Reads run logs for watchers; fed by the store's announcements (see module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._channels: dict[str, _Channel] = {}
        self._closing = False
        self._listeners: list[Callable[[Sequence[Event]], None]] = []
        store.set_listener(self._on_committed)
        store.on_reconnected(self.resync)

    def add_listener(self, listener: Callable[[Sequence[Event]], None]) -> None:
        """Also call ``listener(events)`` with every batch of committed events (for metrics).

        It runs on the event loop inside the commit path: it must be quick and must not raise.
        """
        self._listeners.append(listener)

    @property
    def watcher_count(self) -> int:
        """How many watchers are reading a log right now."""
        return sum(channel.watchers for channel in self._channels.values())

    def is_watched(self, run_id: str) -> bool:
        """True while somebody reads the run's log."""
        return run_id in self._channels

    @property
    def closing(self) -> bool:
        return self._closing

    def _on_committed(self, events: Sequence[Event]) -> None:
        for listener in self._listeners:
            listener(events)
        channels = self._channels
        if not channels:
            return
        woken: set[_Channel] = set()
        for event in events:
            channel = channels.get(event.run_id)
            if channel is not None:
                tail = channel.tail
                if tail and event.seq != tail[-1].seq + 1:
                    if event.seq <= tail[-1].seq:
                        continue  # announced twice (a shared store re-subscribing)
                    tail.clear()  # announcements were missed: watchers read the store
                tail.append(event)
                woken.add(channel)
        for channel in woken:
            channel.notify()

    def resync(self) -> None:
        """Announcements may have been missed (the store's subscription broke): every watcher
        re-reads the store from its cursor."""
        for channel in self._channels.values():
            channel.tail.clear()
            channel.clear_pages()
            channel.resyncs += 1
            channel.notify()

    def close(self) -> None:
        """Stop live reading: every watcher drains what is committed, then its stream ends."""
        self._closing = True
        for channel in self._channels.values():
            channel.notify()

    def _closed_meanwhile(self) -> bool:
        """Whether the log is closing (a call, so that type checkers do not assume a value
        checked before an ``await`` still holds after it)."""
        return self._closing

    async def batches(self, run_id: str, after: int = 0) -> AsyncGenerator[list[Event], None]:
        """Yield the run's events with ``seq > after`` in batches, in order, live.

        Raises ``RunNotFound`` first if there is no such run. Ends after the batch that holds
        the terminal event, or, once the log is closing (the app is shutting down), after the
        last committed event. Batches are never empty. Cancelling the consumer only stops this
        reader.
        """
        await self._store.follow_events()  # before the first read: nothing after it is missed
        if await self._store.get_run(run_id) is None:
            raise RunNotFound(run_id)
        channel = self._channels.get(run_id)
        if channel is None:
            channel = self._channels[run_id] = _Channel()
        channel.watchers += 1
        try:
            cursor = max(after, 0)
            caught_up = False  # True once the store had nothing beyond the cursor
            finished = False  # True once the run is known to be over (its log cannot grow)
            checked_finished = False
            resyncs = channel.resyncs
            while True:
                if resyncs != channel.resyncs:
                    resyncs, caught_up = channel.resyncs, False
                if caught_up:
                    batch = channel.after(cursor)
                    if batch is None:  # fell behind the tail: back to the store
                        caught_up = False
                        continue
                    if not batch and channel.ended_by(cursor):
                        return  # a cursor past the end of a run that has just ended
                else:
                    try:
                        batch = await channel.page(self._store, run_id, cursor)
                    except StoreError:
                        if self._closing:  # the app shut down and closed its store meanwhile
                            return
                        raise
                    caught_up = len(batch) < PAGE_SIZE
                    if not batch:
                        if finished:
                            return  # asked for events after the end of a finished run
                        # Events committed while we read are in the tail: look there first.
                        continue
                if batch:
                    for index, event in enumerate(batch):
                        if event.is_terminal:
                            yield batch[: index + 1]
                            return
                    cursor = batch[-1].seq
                    yield batch
                    continue
                if self._closing or finished:
                    return
                if not checked_finished:
                    checked_finished = True
                    try:
                        run = await self._store.get_run(run_id)
                    except StoreError:
                        if self._closed_meanwhile():
                            return
                        raise
                    if run is None or run.is_finished:
                        finished, caught_up = True, False  # one last read, then stop
                    continue  # events may have arrived while we asked: look again
                await channel.wait()
        finally:
            channel.watchers -= 1
            if channel.watchers == 0 and self._channels.get(run_id) is channel:
                del self._channels[run_id]

    async def events(self, run_id: str, after: int = 0) -> AsyncGenerator[Event, None]:
        """Like ``batches`` but one event at a time."""
        async with contextlib.aclosing(self.batches(run_id, after)) as batches:
            async for batch in batches:
                for event in batch:
                    yield event
