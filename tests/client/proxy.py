"""A TCP proxy on 127.0.0.1 that breaks event streams on purpose, for the resume tests.

It forwards bytes between a client and ``upstream`` and counts the events it passes downstream
(each SSE event ends with a blank line, ``\\n\\n``, which neither HTTP headers, chunk framing nor
keep-alive comments contain). Per connection, a ``Breakage`` says what to do: cut the connection
after N events (FIN or RST), cut it in the middle of the event after those, or go silent after
them while keeping the connection open (a dead peer).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

BOUNDARY = b"\n\n"
KEEP_ALIVE = b": keep-alive"
REQUEST_LINE = re.compile(rb"^(?:GET|POST) (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Breakage:
    """What happens to one connection once ``after`` events went through (None: nothing)."""

    after: int | None = None
    mid_event: bool = False  # cut halfway through the next event instead
    silent: bool = False  # forward nothing more, keep the connection open
    reset: bool = False  # cut with a RST instead of a FIN


class _Downstream:
    """The server-to-client direction of one connection, under its ``Breakage``."""

    def __init__(self, breakage: Breakage) -> None:
        self.breakage = breakage
        self.events = 0

    def split(self, pending: bytes) -> tuple[int, bool]:
        """How many bytes of ``pending`` to forward now, and whether to break after them."""
        limit, mid_event = self.breakage.after, self.breakage.mid_event
        if limit is not None and self.events == limit and not mid_event:
            return 0, True  # after=0: break before anything goes through
        position = 0
        while True:
            found = pending.find(BOUNDARY, position)
            if found < 0:
                break
            end = found + len(BOUNDARY)
            if limit is not None and self.events == limit:  # mid_event: this is the next one
                return position + (end - position) // 2, True
            self.events += 1
            position = end
            if limit is not None and self.events == limit and not mid_event:
                return position, True
        if limit is not None and self.events == limit:
            return position, False  # mid_event: wait for the whole next event
        # Keep a trailing newline back: it may be the first half of a boundary.
        held = len(pending) > position and pending.endswith(b"\n")
        return len(pending) - held, False


class BreakingProxy:
    """``async with BreakingProxy(port, plan) as proxy``: ``proxy.url`` leads to the server on
    ``port``; ``plan(n)`` is the ``Breakage`` of the n-th connection (0, 1, ...).

    ``connections``, ``requests``, ``keep_alives`` and ``silent_since`` (loop time) can be
    awaited with ``wait_until``. Set ``upstream_port`` to send new connections to another server (a
    restarted one), as a load balancer would.
    """

    def __init__(
        self, upstream_port: int, plan: Callable[[int], Breakage] = lambda n: Breakage()
    ) -> None:
        self.upstream_port = upstream_port
        self._plan = plan
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Condition()
        self.connections = 0
        self.requests: list[bytes] = []  # the path of each request, in order
        self.breaks: list[Breakage] = []  # each break, as it happened
        self.keep_alives = 0
        self.connected_at: list[float] = []
        self.silent_since: float | None = None
        self.url = ""

    async def __aenter__(self) -> BreakingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        # Cut what is still connected so every handler ends by itself (asyncio logs an error
        # for a connection handler that ends cancelled).
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(condition)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        breakage = self._plan(self.connections)
        self.connections += 1
        self.connected_at.append(asyncio.get_running_loop().time())
        await self._notify()
        upstream: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port
            )
            self._writers.add(upstream)
            pumps = [
                asyncio.create_task(self._pump_up(reader, upstream)),
                asyncio.create_task(self._pump_down(upstream_reader, writer, breakage)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            pass  # the server is down: the client sees its connection closed
        finally:
            for side in (writer, upstream):
                if side is not None:
                    self._writers.discard(side)
                    side.close()
                    with contextlib.suppress(OSError):
                        await side.wait_closed()
            self._handlers.discard(handler)

    async def _pump_up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            self.requests += REQUEST_LINE.findall(data)
            writer.write(data)
            await writer.drain()

    async def _pump_down(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, breakage: Breakage
    ) -> None:
        downstream = _Downstream(breakage)
        pending = b""
        while data := await reader.read(65536):
            pending += data
            forward, broken = downstream.split(pending)
            self.keep_alives += pending[:forward].count(KEEP_ALIVE)
            writer.write(pending[:forward])
            pending = pending[forward:]
            await writer.drain()
            await self._notify()
            if broken:
                await self._break(reader, writer, breakage)
                return
        writer.write(pending)
        await writer.drain()

    async def _break(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, breakage: Breakage
    ) -> None:
        self.breaks.append(breakage)
        if breakage.silent:
            self.silent_since = asyncio.get_running_loop().time()
            await self._notify()
            while await reader.read(65536):  # swallow everything, keep the connection open
                pass
            return
        if breakage.reset:
            writer.transport.abort()
        # else: the handler closes the connection (FIN) as this pump returns
