"""Server-Sent Events: a run's log as a ``text/event-stream`` response.

Each event is written as ``id: <seq>``, ``event: <type>``, ``data: <json>`` (the event's data,
encoded once by the engine). A stream first replays the log after its cursor by itself, one
write per batch; once it has caught up with the run's live ``Broadcast`` it becomes a member,
and the broadcast writes each new batch to it, encoded once for all members (``broadcast.py``).
The stream ends after the terminal event, or after ``shutdown`` when the server stops.

Per connection there are two tasks, both owned by the response: the request's own task
(catching up, then waiting for the broadcast to be done with it) and the *peer watcher*, which
notices a disconnect at once and writes a keep-alive comment when the line has been quiet. A
client that stops reading is cut when its unsent data does not drain within the write deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..app import App
from .broadcast import MAX_BUFFERED, Departure, Hub, Member, Transport
from .transport import TRANSPORT_EXTENSION
from .wire import chunk, encode_events

logger = logging.getLogger("taskcast.server")

EVENT_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    # Proxies and browsers must neither cache nor buffer a live stream.
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

# A comment line with no blank line after it: it never ends an event block, so no client
# (httpx-sse included) mistakes it for an empty event.
KEEP_ALIVE = b": keep-alive\n"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How event streams behave on the wire.

    ``keepalive``: seconds of quiet before a ``: keep-alive`` comment (proxies drop idle
    connections). ``write_timeout``: seconds a client's unsent data may wait to drain before
    the stream is cut. ``retry_ms``: the reconnection delay hinted to EventSource.
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


class StreamObserver(Protocol):
    """Told when streams open and close, and when one is cut for not reading (for metrics)."""

    def stream_opened(self) -> None: ...

    def stream_closed(self) -> None: ...

    def stream_dropped(self) -> None: ...


class _ClientGone(Exception):
    """The client closed the connection."""


class _ClientTooSlow(Exception):
    """Unsent data did not drain within the write deadline: the client stopped reading."""


class _Writer:
    """Writes one response body: straight to the transport when it has one (HTTP/1.1 chunks),
    else through ASGI ``send``. Every write is whole, so writers never interleave mid-event."""

    def __init__(self, send: Send, transport: Transport | None, write_timeout: float) -> None:
        self._send = send
        self.transport = transport
        self._write_timeout = write_timeout
        self._sending = asyncio.Lock()  # ASGI sends only: the raw writes are synchronous
        self._complete = False

    async def write(self, payload: bytes) -> None:
        """Write ``payload``; wait while the client's unsent data is over ``MAX_BUFFERED``."""
        if self.transport is None:
            await self._asgi(payload, more=True)
            return
        if self._complete:
            return
        if self.transport.is_closing():
            raise _ClientGone()
        self.transport.write(chunk(payload))
        if self.transport.get_write_buffer_size() > MAX_BUFFERED:
            await self.drain()

    async def drain(self) -> None:
        """Wait until the client took its unsent data; ``_ClientTooSlow`` after the deadline."""
        # An empty body message writes nothing but waits for the server's flow control.
        await self._asgi(b"", more=True)

    async def finish(self) -> None:
        await self._asgi(b"", more=False)

    async def _asgi(self, body: bytes, *, more: bool) -> None:
        message: dict[str, Any] = {"type": "http.response.body", "body": body, "more_body": more}
        async with self._sending:
            if self._complete:
                return
            self._complete = not more
            try:
                async with asyncio.timeout(self._write_timeout):
                    await self._send(message)
            except TimeoutError:
                raise _ClientTooSlow() from None


class EventStreamResponse(Response):
    """Stream the events of ``run_id`` after ``cursor`` until its log ends.

    With a ``hub`` and a raw transport, the stream joins the run's broadcast once caught up.
    ``observer`` hears of the stream's opening, closing and cut (if it stops reading).
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        app: App,
        run_id: str,
        cursor: int,
        settings: StreamSettings,
        observer: StreamObserver,
        hub: Hub | None = None,
    ) -> None:
        super().__init__(status_code=200)
        self.raw_headers = [*EVENT_STREAM_HEADERS]
        self._app = app
        self._run_id = run_id
        self._cursor = cursor
        self._settings = settings
        self._hub = hub
        self._observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)
        writer = _Writer(send, transport, self._settings.write_timeout)
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self._observer.stream_opened()
        try:
            await self._serve(receive, writer)
        finally:
            self._observer.stream_closed()

    async def _serve(self, receive: Receive, writer: _Writer) -> None:
        transport = writer.transport
        try:
            async with asyncio.TaskGroup() as tasks:
                watcher = tasks.create_task(self._watch_peer(receive, writer))
                try:
                    await self._stream(writer)
                finally:
                    watcher.cancel()
        except* _ClientGone:
            pass  # nothing to tell anyone: the client left
        except* _ClientTooSlow:
            self._observer.stream_dropped()
            logger.info("cut a client that stopped reading for %gs", self._settings.write_timeout)
            if transport is not None:
                transport.abort()
                # Let the transport report the loss before we return, so the server sees a
                # disconnected client rather than an unfinished response.
                await asyncio.sleep(0)

    async def _stream(self, writer: _Writer) -> None:
        cursor = self._cursor
        # The retry hint rides on the first event: alone, some clients (httpx-sse) would report
        # it as an empty event.
        prefix = f"retry: {self._settings.retry_ms}\n".encode()
        while True:
            member: Member | None = None
            async with contextlib.aclosing(
                self._app.event_batches(self._run_id, after=cursor)
            ) as batches:
                async for batch in batches:
                    await writer.write(prefix + encode_events(batch))
                    prefix = b""
                    cursor = batch[-1].seq
                    if batch[-1].is_terminal:
                        break
                    if self._hub is not None and writer.transport is not None:
                        member = self._hub.try_join(self._run_id, writer.transport, cursor)
                        if member is not None:
                            break
            if member is None:  # the log ended: terminal event, or the server is stopping
                await writer.finish()
                return
            try:
                departure = await member.departed
            finally:
                self._hub.leave(member)  # type: ignore[union-attr]
            if departure is Departure.ENDED:
                await writer.finish()
                return
            if departure is Departure.GONE:
                raise _ClientGone()
            # BEHIND: the client must take what it has before it reads on by itself.
            cursor = member.seq
            await writer.drain()

    async def _watch_peer(self, receive: Receive, writer: _Writer) -> None:
        """Raise ``_ClientGone`` when the client disconnects; keep the line alive meanwhile."""
        while True:
            try:
                async with asyncio.timeout(self._settings.keepalive):
                    message = await receive()
            except TimeoutError:
                await writer.write(KEEP_ALIVE)
                continue
            if message["type"] == "http.disconnect":
                raise _ClientGone()
