"""Refuse request bodies over a size limit with 413, before they are read into memory."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import body_too_large, send_error

DEFAULT_MAX_BODY = 1024 * 1024


class BodyLimit:
    """ASGI middleware: a body longer than ``max_bytes`` gets 413 ``body_too_large``.

    A declared ``Content-Length`` is checked before anything is read; a chunked body is counted
    as it arrives (the route then fails with the same 413).
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await send_error(send, 413, body_too_large(self.max_bytes), connection="close")
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException, so that FastAPI's body parsing lets it through.
                    raise HTTPException(413, detail=str(self.max_bytes))
            return message

        await self.app(scope, counting_receive, send)
