"""The ``traceparent`` header of a request, carried into the runs it submits.

``TraceContext`` reads the header (W3C Trace Context) into ``taskcast.tracing.incoming`` for
the length of the request, so ``POST /runs`` (and a retry) stores it with the run; the engine
prefers the current OpenTelemetry span when there is one (``taskcast.tracing``). A header that
is not a trace context is refused with 400 naming ``traceparent``, and nothing is done.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ..tracing import incoming, traceparent_error
from .errors import error_body, send_error


class TraceContext:
    """ASGI middleware: ``traceparent`` header -> ``taskcast.tracing.incoming``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = None
        for name, raw in scope["headers"]:
            if name == b"traceparent":
                value = raw.decode("latin-1").strip(" \t")
                break
        if value is None:
            await self.app(scope, receive, send)
            return
        problem = traceparent_error(value)
        if problem is not None:
            body = error_body(
                "invalid_request",
                f"the request is not valid: header.traceparent: {problem}",
                problems=[{"param": "header.traceparent", "problem": problem}],
            )
            await send_error(send, 400, body)
            return
        reset = incoming.set(value)
        try:
            await self.app(scope, receive, send)
        finally:
            incoming.reset(reset)
