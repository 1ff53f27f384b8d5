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
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..app import App
from .broadcast import MAX_BUFFERED, Departure, Hub, Member, Transport
from .replay import ReplayBudget
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

    async def write(self, payload: bytes, *, wait: bool = True) -> None:
        """Write ``payload``; wait while the client's unsent data is over ``MAX_BUFFERED``
        (unless not ``wait``: the last words of a stream the server is stopping)."""
        if self.transport is None:
            await self._asgi(payload, more=True)
            return
        self.put(payload)
        if wait:
            await self.settle()

    def put(self, payload: bytes) -> None:
        """Write ``payload`` to the transport now, whole (raw transports only)."""
        assert self.transport is not None
        if self._complete:
            return
        if self.transport.is_closing():
            raise _ClientGone()
        self.transport.write(chunk(payload))

    async def settle(self) -> None:
        """Wait while the client's unsent data is over ``MAX_BUFFERED`` (raw transports)."""
        if self.transport is not None and self.transport.get_write_buffer_size() > MAX_BUFFERED:
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


def _cap_send_buffer(transport: Transport) -> None:
    """Cap the socket send buffer of a stream's connection to ``SEND_BUFFER`` (see there)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        with contextlib.suppress(OSError):  # the connection may be closing already
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


def shutdown_frame(cursor: int) -> bytes:
    """The ``shutdown`` event that ends a replay cut short by a stopping server.

    It has no ``id``: the client's last event id stays ``cursor``, the last event it was sent, so
    its reconnect (``Last-Event-ID``) resumes right there on the next server. The run's own
    ``shutdown`` event, if it gets one, is in its log and comes in the replay like any other.
    """
    return b'event: shutdown\ndata: {"reason":"shutdown","resume_after":%d}\n\n' % cursor


class _CutWhenStopping:
    """Cancel the block the moment ``app`` begins to stop (never, with no app); ``cut`` then
    says so and the block ends quietly.

    A reconnect storm can leave thousands of streams replaying long logs when a deploy stops the
    server: each would otherwise replay to its end before it gets its ``shutdown`` event, far past
    the stop's bound. Live streams (members of a broadcast) are not cut: they get the run's own
    ``shutdown`` event when the log closes.
    """

    def __init__(self, app: App | None) -> None:
        self._app = app
        self._scope = asyncio.timeout(None)
        self._unsubscribe: Callable[[], None] = lambda: None
        self.cut = False

    async def __aenter__(self) -> None:
        await self._scope.__aenter__()
        if self._app is not None:
            self._unsubscribe = self._app.when_stopping(self._stop)

    def _stop(self) -> None:
        self._scope.reschedule(asyncio.get_running_loop().time())

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool:
        self._unsubscribe()
        try:
            await self._scope.__aexit__(kind, error, tb)
        except TimeoutError:
            if not self._scope.expired():
                raise
            self.cut = True
            return True
        return False


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
        *,
        replays: ReplayBudget,  # one per server: replays share the loop, not a slice each
    ) -> None:
        super().__init__(status_code=200)
        self.raw_headers = [*EVENT_STREAM_HEADERS]
        self._app = app
        self._run_id = run_id
        self._cursor = cursor
        self._settings = settings
        self._hub = hub
        self._replays = replays
        self._observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)
        if transport is not None:
            _cap_send_buffer(transport)
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
        # A stream that can join the run's broadcast once caught up replays by itself until
        # then; that replay is cut short when the server begins to stop (see ``_CutWhenStopping``).
        joins = self._hub is not None and writer.transport is not None
        while True:
            member: Member | None = None
            replay = _CutWhenStopping(self._app if joins else None)
            async with (
                replay,
                contextlib.aclosing(self._app.event_batches(self._run_id, after=cursor)) as batches,
            ):
                async for batch in batches:
                    seq = batch[-1].seq
                    if joins:  # a replay: in its share of the loop, with every other one
                        with await self._replays.step():
                            payload, prefix, cursor = prefix + encode_events(batch), b"", seq
                            writer.put(payload)
                        await writer.settle()
                    else:
                        payload, prefix, cursor = prefix + encode_events(batch), b"", seq
                        await writer.write(payload)
                    if batch[-1].is_terminal:
                        break
                    if joins:
                        member = self._hub.try_join(self._run_id, writer.transport, cursor)  # type: ignore[union-attr,arg-type]
                        if member is not None:
                            break
            if replay.cut:
                await writer.write(prefix + shutdown_frame(cursor), wait=False)
                await writer.finish()
                return
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
