"""A real HTTP/1.1 server on 127.0.0.1 for http.fetch tests: it answers from a script, can
stream a body slowly, and records when a client closes its connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stall_after: int | None = None
    """Send this many body bytes, then nothing more (until the client goes away)."""
    length: int | None = None
    """Content-Length to announce (default: the body's)."""
    hang_up: bool = False
    """Close the connection right after sending ``body`` (a network failure mid-body)."""


class SlowServer:
    def __init__(self) -> None:
        self.reply = Reply()
        self.connections_closed_by_client = 0
        self.client_closed = asyncio.Event()
        self.stalled = asyncio.Event()
        self.requests: list[str] = []
        self.hosts: list[str] = []
        """The Host header of each request, in order."""
        self._handlers: set[asyncio.Task[None]] = set()
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.requests.append(lines[0])
            self.hosts += [
                line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("host:")
            ]
            reply = self.reply
            length = reply.length if reply.length is not None else len(reply.body)
            lines = [f"HTTP/1.1 {reply.status} Whatever", f"Content-Length: {length}"]
            lines += [f"{k}: {v}" for k, v in reply.headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            body = reply.body if reply.stall_after is None else reply.body[: reply.stall_after]
            writer.write(body)
            await writer.drain()
            if reply.hang_up:
                pass  # the finally below closes the connection
            elif reply.stall_after is not None:
                self.stalled.set()
                # Nothing more to send: wait for the client to hang up (EOF on our side).
                if await reader.read(1) == b"":
                    self.connections_closed_by_client += 1
                    self.client_closed.set()
            else:
                await reader.read()  # keep-alive: until the client closes
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)


@contextlib.asynccontextmanager
async def slow_server() -> AsyncIterator[SlowServer]:
    state = SlowServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        async with server:
            yield state
    finally:
        for handler in list(state._handlers):
            handler.cancel()
        if state._handlers:
            await asyncio.wait(list(state._handlers))
