"""Give responses their connection's transport: ``scope["extensions"]["taskcast.transport"]``.

ASGI hides the socket, and two things need it:

* writing one pre-encoded chunk to a thousand event streams without waking a thousand tasks
  (see ``broadcast.py``): the chunk is written as is, so this is only offered for HTTP/1.1,
  where the server frames a body of unknown length as chunks;
* dropping a client that stopped reading: closing politely waits for the unsent buffer to
  drain, which never happens; ``abort()`` does not wait.

uvicorn's ``send`` is a method of its request cycle, which holds the transport: this wrapper,
outermost, reaches it when it is there and adds nothing otherwise (streams then use plain ASGI).
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

TRANSPORT_EXTENSION = "taskcast.transport"


class Transport(Protocol):
    """What a broadcast needs of a connection (an ``asyncio.WriteTransport``)."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...

    def abort(self) -> None: ...


class ExposeTransport:
    """ASGI wrapper adding the transport extension to HTTP/1.1 requests (see above)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("http_version") == "1.1":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if all(hasattr(transport, name) for name in ("write", "abort", "is_closing")):
                extensions = scope.get("extensions") or {}
                scope["extensions"] = {**extensions, TRANSPORT_EXTENSION: transport}
        await self.app(scope, receive, send)
