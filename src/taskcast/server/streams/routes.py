"""``GET /runs/{id}/events`` served ahead of the framework.

A stream may stay open for hours and there may be thousands of them: every middleware and
routing layer it passes through stays suspended as a frame for as long as the connection lives.
So this route takes event-stream requests first and hands everything else to the FastAPI app,
whose route of the same path documents it in /openapi.json and answers the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..cursors import parse_seq, seq_error
from ..errors import InvalidRequest, TaskcastError
from .errors import error_response

EVENTS_PATH = re.compile(r"/runs/([A-Za-z0-9._~:-]{1,128})/events")

OpenStream = Callable[[str, int | None, str | None], Awaitable[Response]]
"""``(run_id, after, last_event_id) -> response``: the stream, a 204, or raises an error."""


def read_cursor(text: str, location: str, name: str) -> int:
    """``text`` as the cursor ``name`` sent in the request's ``location`` (``query``,
    ``header``): see ``taskcast.cursors``. Raises ``InvalidRequest`` naming it, with the same
    ``problems`` a validation error has."""
    seq = parse_seq(text)
    if seq is None:
        problem = seq_error(text, name)
        raise InvalidRequest(
            f"the request is not valid: {location}.{name}: {problem}",
            problems=[{"param": f"{location}.{name}", "problem": problem}],
        )
    return seq


def _after(query_string: bytes) -> int | None:
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == "after":
            return read_cursor(value, "query", "after")
    return None


def _last_event_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"last-event-id":
            text: str = value.decode("latin-1")
            return text
    return None


class EventStreamRoute:
    """ASGI app: event-stream requests go to ``open_stream``, the rest to ``fallback``."""

    def __init__(self, fallback: ASGIApp, open_stream: OpenStream) -> None:
        self._fallback = fallback
        self._open_stream = open_stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            found = EVENTS_PATH.fullmatch(scope["path"])
            if found is not None:
                try:
                    response = await self._open_stream(
                        found.group(1), _after(scope["query_string"]), _last_event_id(scope)
                    )
                except TaskcastError as error:
                    response = error_response(error)
                await response(scope, receive, send)
                return
        await self._fallback(scope, receive, send)
