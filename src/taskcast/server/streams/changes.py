"""``GET /changes``: every run's lifecycle changes as one Server-Sent Events stream (dashboards).

The feed reads what the store committed, like every other watcher: ``App.add_listener`` hands
it each batch of committed events, and it keeps only the lifecycle ones (``queued``,
``started``, ``retrying``, ``interrupted``, the terminal events, ``shutdown``; see
``taskcast.events``), turned into a small *change*:
``{"id", "seq", "type", "at", "state"}`` plus ``task`` (on ``queued``) and ``attempt`` (on
``started``). ``seq`` lets a client that also listed the runs keep whichever it saw last.

Each stream gets, in this order: a ``counts`` event (runs by state, from the store), then one
``run`` event per change, a fresh ``counts`` at most once per ``COUNTS_INTERVAL`` while runs
change, and ``shutdown`` when the server stops, after which it ends. It is written by the same
``EventStream`` writer as run streams (``sse.py``: keep-alive, write deadline, a client gone,
all handled there). Nothing here slows a run:
the listener only appends encoded bytes to each stream's pending list. That list is bounded: a
stream that falls ``MAX_PENDING`` changes behind drops them and gets one ``reset`` event
instead, meaning "list the runs again" (what a client does on every (re)connect anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from ... import events
from ...app import App
from ...errors import TaskcastError
from ...models import Event
from ...states import RunState
from .sse import EventStream, StreamObserver, StreamSettings, Writer

MAX_PENDING = 10_000
"""Changes a stream may have waiting to be written; beyond, it gets ``reset`` instead."""

COUNTS_INTERVAL = 1.0
"""Seconds between two ``counts`` events of one stream (they cost a query of the store)."""

TICK = 0.25
"""Seconds a stream sleeps at most between looks at the server's state: how soon it notices
that the server stopped (no event says so when no run was unfinished) and sends due counts."""


def change_of(event: Event) -> dict[str, Any] | None:
    """The change ``event`` makes to its run, or ``None`` if it is not a lifecycle event."""
    state = events.state_after(event.type, event.data)
    if state is None:
        return None
    data = event.data if isinstance(event.data, dict) else {}
    change: dict[str, Any] = {
        "id": event.run_id,
        "seq": event.seq,
        "type": event.type,
        "at": event.at,
        "state": state.value,
    }
    if event.type == events.QUEUED and "task" in data:
        change["task"] = data["task"]
    if event.type == events.STARTED and "attempt" in data:
        change["attempt"] = data["attempt"]
    return change


def _sse(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Pending:
    """One stream's encoded changes not written yet (bounded; see the module docstring)."""

    __slots__ = ("chunks", "count", "overflowed", "ready")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.count = 0
        self.overflowed = False
        self.ready = asyncio.Event()

    def push(self, payload: bytes, count: int) -> None:
        if self.count + count > MAX_PENDING:
            self.chunks.clear()
            self.count = 0
            self.overflowed = True
        else:
            self.chunks.append(payload)
            self.count += count
        self.ready.set()

    def take(self) -> bytes:
        payload = b"".join(self.chunks)
        self.chunks.clear()
        self.count = 0
        return payload


class RunChanges:
    """The feed of run changes of ``app``; call ``attach`` once the app is started."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._streams: set[_Pending] = set()

    @property
    def stream_count(self) -> int:
        """How many ``/changes`` streams are open."""
        return len(self._streams)

    def attach(self) -> None:
        """Start listening to committed events (the app must be started)."""
        self.app.add_listener(self._on_events)

    def _on_events(self, events: Sequence[Event]) -> None:
        if not self._streams:
            return
        changes = [change for event in events if (change := change_of(event)) is not None]
        if not changes:
            return
        payload = "".join(_sse("run", change) for change in changes).encode()
        for pending in self._streams:
            pending.push(payload, len(changes))

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[_Pending]:
        """Register a stream's pending list for as long as the block lasts."""
        pending = _Pending()
        self._streams.add(pending)
        try:
            yield pending
        finally:
            self._streams.discard(pending)

    def response(self, settings: StreamSettings, observer: StreamObserver) -> ChangesStream:
        """A new stream of changes, from now on."""
        return ChangesStream(self, settings, observer)

    async def counts_event(self) -> bytes:
        """A ``counts`` event: runs in the store by state, every state named (0 if none)."""
        counts = dict.fromkeys((state.value for state in RunState), 0)
        for (_, state), count in (await self.app.count_runs()).items():
            counts[state.value] += count
        return _sse("counts", counts).encode()


class ChangesStream(EventStream):
    """One ``/changes`` stream (see the module docstring); keep-alive, write deadline and
    disconnects are the writer's (``sse.py``)."""

    def __init__(
        self, changes: RunChanges, settings: StreamSettings, observer: StreamObserver
    ) -> None:
        super().__init__(settings, observer)
        self._changes = changes

    async def stream(self, writer: Writer) -> None:
        with self._changes.subscribe() as pending:
            await self._write_changes(pending, writer)

    async def _write_changes(self, pending: _Pending, writer: Writer) -> None:
        app = self._changes.app
        counts = await self._changes.counts_event() if app.accepting else b""
        await writer.write(self.settings.retry_field + counts)
        last_counts = time.monotonic()
        counts_due = False
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await pending.ready.wait()
            pending.ready.clear()
            out: list[bytes] = []
            if pending.overflowed:
                pending.overflowed = False
                out.append(_sse("reset", {"reason": "this client fell behind"}).encode())
            changed = pending.take()
            if changed:
                out.append(changed)
                counts_due = True
            now = time.monotonic()
            # While stopping, the store may close under a query: counts wait for the restart.
            if counts_due and app.accepting and now - last_counts >= COUNTS_INTERVAL:
                counts_due, last_counts = False, now
                with contextlib.suppress(TaskcastError):  # the store failing: counts wait
                    out.append(await self._changes.counts_event())
            if app.stopped:
                out.append(_sse("shutdown", {"reason": "the server is stopping"}).encode())
                await writer.write(b"".join(out), wait=False)
                return
            if out:
                await writer.write(b"".join(out))
