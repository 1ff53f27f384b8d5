"""Server-Sent Events: a run's log as a ``text/event-stream`` response.

Each event is written as ``id: <seq>``, ``event: <type>``, ``data: <json>`` (the event's data,
encoded once by the engine however many clients read it). Events come from
``App.event_batches``, so a stream replays the stored log, then goes live, and one batch (all
that was available at once) is one write: a client that fell behind catches up in few writes.

Per connection there are two tasks, both owned by the response: the *writer* (the request's
own task) copies batches to the socket, and the *peer watcher* waits for the client to go away
and writes a keep-alive comment when the line has been quiet. A disconnect cancels the writer
at once, so a gone client costs nothing afterwards; a client that stops reading is cut when a
write has not gone through within the write deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..models import Event

logger = logging.getLogger("taskcast.server")

ABORT_EXTENSION = "taskcast.abort"
"""Scope extension holding a callable that aborts the connection (see ``transport.py``)."""

EVENT_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    # Proxies and browsers must neither cache nor buffer a live stream.
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How event streams behave on the wire.

    ``keepalive``: seconds of quiet before a ``: keep-alive`` comment (proxies drop idle
    connections). ``write_timeout``: seconds a single write may wait for a client that does not
    read before the stream is cut. ``retry_ms``: the reconnection delay hinted to EventSource.
    """

    keepalive: float = 15.0
    write_timeout: float = 10.0
    retry_ms: int = 2000

    def __post_init__(self) -> None:
        if not self.keepalive > 0:
            raise ValueError(
                f"keepalive must be a positive number of seconds, got {self.keepalive}"
            )
        if not self.write_timeout > 0:
            raise ValueError(
                f"write_timeout must be a positive number of seconds, got {self.write_timeout}"
            )
        if self.retry_ms < 0:
            raise ValueError(f"retry_ms must be >= 0, got {self.retry_ms}")


def encode_events(events: Sequence[Event]) -> bytes:
    """The SSE wire form of ``events``, in order, as one chunk."""
    return "".join(
        [f"id: {event.seq}\nevent: {event.type}\ndata: {event.data_json()}\n\n" for event in events]
    ).encode()


class _ClientGone(Exception):
    """The client closed the connection."""


class _ClientTooSlow(Exception):
    """A write did not go through within the write deadline: the client stopped reading."""


class EventStreamResponse(Response):
    """Stream ``batches`` as SSE until the iterator ends (terminal event or shutdown).

    ``on_drop`` is called once if the client is cut for not reading. The response closes the
    iterator whatever happens (disconnect, deadline, cancellation by the server).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        batches: AsyncIterator[list[Event]],
        settings: StreamSettings,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(status_code=200)
        self.raw_headers = [*EVENT_STREAM_HEADERS]
        self._batches = batches
        self._settings = settings
        self._on_drop = on_drop
        # One send at a time: the writer and the keep-alive both write to the same response.
        self._sending = asyncio.Lock()
        self._complete = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        try:
            async with contextlib.aclosing(self._batches):  # type: ignore[type-var]
                await self._stream(receive, send)
        except* _ClientGone:
            pass  # nothing to tell anyone: the client left
        except* _ClientTooSlow:
            self._on_drop()
            logger.info("cut a client that stopped reading for %gs", self._settings.write_timeout)
            abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
            if abort is not None:
                abort()
                # Let the transport report the loss before we return, so the server sees a
                # disconnected client rather than an unfinished response.
                await asyncio.sleep(0)

    async def _stream(self, receive: Receive, send: Send) -> None:
        async with asyncio.TaskGroup() as tasks:
            watcher = tasks.create_task(self._watch_peer(receive, send))
            try:
                await self._write_events(send)
            finally:
                watcher.cancel()

    async def _write_events(self, send: Send) -> None:
        # The retry hint rides on the first event: alone, some clients (httpx-sse) would
        # report it as an empty event.
        prefix = f"retry: {self._settings.retry_ms}\n".encode()
        async for batch in self._batches:
            await self._send(send, prefix + encode_events(batch), more=True)
            prefix = b""
        await self._send(send, b"", more=False)

    async def _watch_peer(self, receive: Receive, send: Send) -> None:
        """Raise ``_ClientGone`` when the client disconnects; keep the line alive meanwhile."""
        while True:
            try:
                async with asyncio.timeout(self._settings.keepalive):
                    message = await receive()
            except TimeoutError:
                # A comment line with no blank line after it: it never ends an event block, so
                # no client (httpx-sse included) mistakes it for an empty event.
                await self._send(send, b": keep-alive\n", more=True)
                continue
            if message["type"] == "http.disconnect":
                raise _ClientGone()

    async def _send(self, send: Send, body: bytes, *, more: bool) -> None:
        """Send one chunk, or raise ``_ClientTooSlow`` if the client does not take it in time."""
        message: dict[str, Any] = {"type": "http.response.body", "body": body, "more_body": more}
        async with self._sending:
            if self._complete:
                return
            self._complete = not more
            try:
                async with asyncio.timeout(self._settings.write_timeout):
                    await send(message)
            except TimeoutError:
                raise _ClientTooSlow() from None
