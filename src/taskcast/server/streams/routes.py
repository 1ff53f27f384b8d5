"""The stream routes: ``GET /runs/{id}/events`` and ``GET /changes``.

``router`` documents both in /openapi.json and answers them through FastAPI. But a run stream
may stay open for hours and there may be thousands of them: every middleware and routing layer
it passes through stays suspended as a frame for as long as the connection lives. So
``EventStreamRoute``, an ASGI app outside FastAPI, takes run-stream requests first and hands
everything else to the FastAPI app; both answer the same way (``Streams.open_run_stream``).

The routes find the server's ``Streams`` in the ``ServerState`` at ``request.app.state.taskcast``
(``taskcast.server.state.install`` puts it there).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ...cursors import MAX_SEQ, SEQ_PATTERN
from ...errors import TaskcastError
from ...ids import RUN_ID_PATTERN
from ..errors import error_response
from ..openapi import errors
from .cursors import read_cursor
from .service import Streams
from .sse import EventStream

EVENTS_PATH = re.compile(r"/runs/([A-Za-z0-9._~:-]{1,128})/events")


def streams_of(request: Request) -> Streams:
    """The ``Streams`` of the server answering ``request`` (a dependency): those of its
    ``ServerState`` (``taskcast.server.state``), listening to the App once it is started."""
    state = request.app.state.taskcast
    state.listen()  # when the host application started the App itself
    streams: Streams = state.streams
    return streams


TokenQuery = Annotated[
    str | None, Query(description="The bearer token, for clients that cannot set headers.")
]

router = APIRouter()


@router.get(
    "/runs/{run_id}/events",
    status_code=200,
    response_class=EventStream,
    responses={
        **errors(404),
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "The run's events as Server-Sent Events (see docs/http.md).",
        },
        204: {"description": "Nothing left to send: the run finished at or before the cursor."},
    },
    summary="Watch a run's events (SSE)",
)
async def watch(
    streams: Annotated[Streams, Depends(streams_of)],
    run_id: Annotated[str, Path(description="The run's id.", pattern=RUN_ID_PATTERN)],
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_SEQ, description="Start after this seq (0: the whole log)."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            pattern=SEQ_PATTERN,
            description=f"Resume after this seq (an integer from 0 to {MAX_SEQ}); wins"
            " over `after`.",
        ),
    ] = None,
    token: TokenQuery = None,
) -> Response:
    """Replay the log after the cursor, then stream live; the stream ends after the terminal
    event (or `shutdown`). Each event: `id: <seq>`, `event: <type>`, `data: <json>`."""
    return await streams.open_run_stream(run_id, after, last_event_id)


@router.get(
    "/changes",
    status_code=200,
    response_class=Response,
    responses={
        **errors(),
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Run changes as Server-Sent Events (see docs/http.md).",
        },
    },
    summary="Watch every run's state changes (SSE)",
)
async def run_changes(
    streams: Annotated[Streams, Depends(streams_of)], token: TokenQuery = None
) -> Response:
    """From now on: `counts` (runs by state), a `run` event `{"id", "seq", "type", "at",
    "state", "task"?, "attempt"?}` per lifecycle event of any run, `counts` again at most
    once a second while runs change, `reset` if this client fell too far behind (list the
    runs again), and `shutdown` before the stream ends when the server stops."""
    return streams.changes_stream()


def _route_path(scope: Scope) -> str:
    """The path below where the app is mounted (``root_path``), as Starlette routes it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


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
    """ASGI app: run-stream requests go to ``streams``, the rest to ``fallback``."""

    def __init__(self, fallback: ASGIApp, streams: Streams) -> None:
        self._fallback = fallback
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            found = EVENTS_PATH.fullmatch(_route_path(scope))
            if found is not None:
                try:
                    response = await self._streams.open_run_stream(
                        found.group(1), _after(scope["query_string"]), _last_event_id(scope)
                    )
                except TaskcastError as error:
                    response = error_response(error)
                await response(scope, receive, send)
                return
        await self._fallback(scope, receive, send)
