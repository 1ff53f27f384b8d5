"""The one writer of Server-Sent Events responses: run streams and ``/changes`` both use it.

An ``EventStream`` is a ``text/event-stream`` response whose body a subclass writes through a
``Writer`` (``stream``). What every stream needs is done here, once:

* the connection's socket send buffer is capped (``SEND_BUFFER``), so a client that stops
  reading shows as unsent data piling up where the write deadline sees it;
* writes go straight to the transport when the server exposes it (HTTP/1.1 chunks, see
  ``transport.py``), else through ASGI ``send``; every write is whole, so writers never
  interleave mid-event;
* a *peer watcher* task notices a disconnect at once and writes a ``: keep-alive`` comment
  after ``keepalive`` seconds without a write of the stream's own (proxies drop idle
  connections; a broadcast's writes go around the writer, so a live run stream still gets one
  every ``keepalive`` seconds);
* a client whose unsent data does not drain within ``write_timeout`` is cut (its transport
  aborted: closing politely would wait for a drain that never comes), and the observer told;
* a client that left ends the stream quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .broadcast import MAX_BUFFERED
from .transport import TRANSPORT_EXTENSION, Transport
from .wire import chunk

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

SEND_BUFFER = 64 * 1024
"""Bytes asked for as an event stream's socket send buffer (``SO_SNDBUF``; Linux doubles it for
its bookkeeping). Left alone, the kernel grows it to megabytes for a client that stops reading,
which hides that client from the write deadline (its data "left") and costs kernel memory that
no RSS shows. Capped, the unsent data piles up where the deadline sees it within a page."""


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

    @property
    def retry_field(self) -> bytes:
        """The ``retry:`` line. It rides on a stream's first event: alone, some clients
        (httpx-sse) would report it as an empty event."""
        return b"retry: %d\n" % self.retry_ms


class StreamObserver(Protocol):
    """Told when streams open and close, and when one is cut for not reading (for metrics)."""

    def stream_opened(self) -> None: ...

    def stream_closed(self) -> None: ...

    def stream_dropped(self) -> None: ...


class ClientGone(Exception):
    """The client closed the connection."""


class ClientTooSlow(Exception):
    """Unsent data did not drain within the write deadline: the client stopped reading."""


class Writer:
    """Writes one response body: straight to the transport when it has one (HTTP/1.1 chunks),
    else through ASGI ``send``. Every write is whole, so writers never interleave mid-event."""

    def __init__(self, send: Send, transport: Transport | None, write_timeout: float) -> None:
        self._send = send
        self.transport = transport
        self._write_timeout = write_timeout
        self._sending = asyncio.Lock()  # ASGI sends only: the raw writes are synchronous
        self._complete = False
        self.last_write = time.monotonic()
        """When this writer last wrote (a broadcast's writes to the transport are not seen)."""

    async def write(self, payload: bytes, *, wait: bool = True) -> None:
        """Write ``payload``; wait while the client's unsent data is over ``MAX_BUFFERED``
        (unless not ``wait``: the last words of a stream the server is stopping)."""
        self.last_write = time.monotonic()
        if self.transport is None:
            await self._asgi(payload, more=True)
            return
        self.put(payload)
        if wait:
            await self.settle()

    def put(self, payload: bytes) -> None:
        """Write ``payload`` to the transport now, whole (raw transports only)."""
        assert self.transport is not None
        self.last_write = time.monotonic()
        if self._complete:
            return
        if self.transport.is_closing():
            raise ClientGone()
        self.transport.write(chunk(payload))

    async def settle(self) -> None:
        """Wait while the client's unsent data is over ``MAX_BUFFERED`` (raw transports)."""
        if self.transport is not None and self.transport.get_write_buffer_size() > MAX_BUFFERED:
            await self.drain()

    async def drain(self) -> None:
        """Wait until the client took its unsent data; ``ClientTooSlow`` after the deadline."""
        # An empty body message writes nothing but waits for the server's flow control.
        await self._asgi(b"", more=True)

    async def finish(self) -> None:
        """End the body (the last chunk); later writes are ignored."""
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
                raise ClientTooSlow() from None


def _cap_send_buffer(transport: Transport) -> None:
    """Cap the socket send buffer of a stream's connection to ``SEND_BUFFER`` (see there)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        with contextlib.suppress(OSError):  # the connection may be closing already
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


class EventStream(Response):
    """A ``text/event-stream`` response whose body ``stream`` writes (see the module
    docstring). ``stream`` returns once the body is complete (after ``writer.finish()``, or
    it is finished for it); ``ClientGone`` from it ends the stream quietly."""

    media_type = "text/event-stream"

    def __init__(self, settings: StreamSettings, observer: StreamObserver) -> None:
        super().__init__(status_code=200)
        self.raw_headers = [*EVENT_STREAM_HEADERS]
        self.settings = settings
        self._observer = observer

    async def stream(self, writer: Writer) -> None:
        """Write the body (subclasses)."""
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)
        if transport is not None:
            _cap_send_buffer(transport)
        writer = Writer(send, transport, self.settings.write_timeout)
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self._observer.stream_opened()
        try:
            await self._serve(receive, writer)
        finally:
            self._observer.stream_closed()

    async def _serve(self, receive: Receive, writer: Writer) -> None:
        transport = writer.transport
        try:
            async with asyncio.TaskGroup() as tasks:
                watcher = tasks.create_task(self._watch_peer(receive, writer))
                try:
                    await self.stream(writer)
                    await writer.finish()  # harmless when the stream finished it
                finally:
                    watcher.cancel()
        except* ClientGone:
            pass  # nothing to tell anyone: the client left
        except* ClientTooSlow:
            self._observer.stream_dropped()
            logger.info("cut a client that stopped reading for %gs", self.settings.write_timeout)
            if transport is not None:
                transport.abort()
                # Let the transport report the loss before we return, so the server sees a
                # disconnected client rather than an unfinished response.
                await asyncio.sleep(0)

    async def _watch_peer(self, receive: Receive, writer: Writer) -> None:
        """Raise ``ClientGone`` when the client disconnects; keep the line alive meanwhile (a
        comment once ``keepalive`` seconds passed without a write)."""
        while True:
            quiet = self.settings.keepalive - (time.monotonic() - writer.last_write)
            if quiet <= 0:
                await writer.write(KEEP_ALIVE)
                continue
            try:
                async with asyncio.timeout(quiet):
                    message = await receive()
            except TimeoutError:
                continue
            if message["type"] == "http.disconnect":
                raise ClientGone()
