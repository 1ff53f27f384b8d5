"""Let a response abort its connection: ``scope["extensions"]["taskcast.abort"]``.

ASGI gives an app no way to drop a connection. Closing one politely waits until the unsent
buffer drains, which never happens when the client stopped reading, so a stalled SSE client
would keep its socket and buffer. uvicorn's ``send`` is a method of its request cycle, which
holds the transport: this wrapper, outermost, reaches it when it is there and does nothing
otherwise (a cut stream then just ends).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .sse import ABORT_EXTENSION


class AbortableConnections:
    """ASGI wrapper adding the abort extension to HTTP requests (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            abort = getattr(transport, "abort", None)
            if abort is not None:
                extensions = scope.get("extensions") or {}
                scope["extensions"] = {**extensions, ABORT_EXTENSION: abort}
        await self.app(scope, receive, send)
