"""Optional bearer-token auth: every route but ``/health``, the dashboard's and the API docs'
pages and files, and ``/openapi.json`` needs ``Authorization: Bearer <token>``.

Browsers cannot set headers on an ``EventSource``, so the event stream routes
(``/runs/{id}/events`` and ``/changes``) also accept the token as ``?token=``. Tokens are
compared in constant time.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_body, send_error

OPEN_PATHS = frozenset({"/health", "/", "/docs", "/openapi.json"})
OPEN_PREFIXES = ("/dashboard/", "/docs/")
"""The pages and their static files hold no data: the dashboard's script asks for the token,
the docs page's Authorize button takes it. The API's description (``/openapi.json``) names no
run and no task."""


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _is_event_stream(scope: Scope) -> bool:
    path: str = scope["path"]
    if scope["method"] != "GET":
        return False
    return path == "/changes" or (path.startswith("/runs/") and path.endswith("/events"))


class BearerTokenAuth:
    """ASGI middleware refusing requests without the token with 401 (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the token must be a non-empty string")
        self.app = app
        self._token = token.encode()

    def _presented(self, scope: Scope) -> bytes | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    token: bytes = credentials.strip()
                    return token
                return None
        if _is_event_stream(scope):
            query: bytes = scope.get("query_string", b"")
            for key, value in parse_qsl(query.decode("latin-1")):
                if key == "token":
                    return value.encode()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        presented = self._presented(scope)
        if presented is not None and hmac.compare_digest(presented, self._token):
            await self.app(scope, receive, send)
            return
        reason = "no bearer token was sent" if presented is None else "the bearer token is wrong"
        body = error_body(
            "unauthorized",
            f"{reason}: send the header 'Authorization: Bearer <token>'"
            " (on /runs/{id}/events, ?token=<token> works too)",
        )
        await send_error(send, 401, body, www_authenticate="Bearer")
