"""The HTTP API of an App (docs/http.md): ``create_app(app)`` builds the ASGI application.

The routes are module-level ``APIRouter``s (``routes/``, ``streams/routes.py``, the dashboard
and the API docs); what they share is a ``ServerState`` on the application's state
(``state.py``). ``create_api`` is the FastAPI application with all of them; ``create_app``
adds what must run ahead of FastAPI: the run-stream fast path, the token and the ``Host`` check.
Either can be mounted in another ASGI application (``Mount("/taskcast", create_app(app))``).
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from .. import __version__
from ..app import App
from . import api_docs, dashboard, routes, streams
from .auth import BearerTokenAuth
from .body_limit import DEFAULT_MAX_BODY, BodyLimit
from .errors import install_error_handlers
from .hosts import ANY_HOST, HostCheck
from .openapi import complete
from .state import ServerState, install
from .streams import EventStreamRoute, StreamSettings
from .tracing import TraceContext

DESCRIPTION = """\
Submit runs of registered tasks, watch their events live over Server-Sent Events, cancel them.

Errors are JSON: `{"error": "<code>", "message": "<what went wrong and what to do>", ...}`.
If the server was started with a token, every route but `/health` (and these docs) needs
`Authorization: Bearer <token>` (the event streams also take `?token=`, for EventSource).
"""


def create_api(
    app: App,
    *,
    bearer: bool = False,
    stream_settings: StreamSettings | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> FastAPI:
    """The FastAPI application serving ``app``: every route, the error shape, the body limit
    and a lifespan that starts ``app`` if it is not started yet and shuts it down on exit
    (both no-ops when ``serve`` already did them). ``bearer``: document the bearer token in
    /openapi.json (``create_app`` checks it). ``stream_settings``: keep-alive, write deadline
    and retry of event streams. ``max_body``: largest request body in bytes (413 beyond).
    Its ``ServerState`` is ``api.state.taskcast``.
    """
    state = ServerState(app, stream_settings or StreamSettings())

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        await state.start()
        yield
        await state.stop()

    api = FastAPI(
        title="taskcast",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # api_docs.py serves /docs from the package
        redoc_url=None,
        # A path is a route or a 404: no redirect to its twin without the trailing slash
        # (POST /runs/X/signals/ names no signal).
        redirect_slashes=False,
    )
    install(api, state)
    complete(api, bearer=bearer)
    install_error_handlers(api)
    api.add_middleware(BodyLimit, max_bytes=max_body)
    for router in (
        routes.health.router,
        routes.runs.router,
        streams.router,
        routes.schedules.router,
        routes.stats.router,
        dashboard.router,
        api_docs.router,
    ):
        api.include_router(router)
    return api


def create_app(
    app: App,
    *,
    token: str | None = None,
    stream_settings: StreamSettings | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    allowed_hosts: Sequence[str] | None = None,
) -> ASGIApp:
    """The ASGI application serving ``app``: ``create_api``'s, with the run streams taken
    ahead of it (``streams/routes.py``), the token checked ahead of both and the ``Host``
    ahead of all.

    ``token``: require this bearer token (see ``auth.py``). ``allowed_hosts``: the ``Host``
    names answered (see ``hosts.py``; ``serve`` derives them from where it listens); ``None``
    answers any. The rest: see ``create_api``.
    """
    api = create_api(app, bearer=bool(token), stream_settings=stream_settings, max_body=max_body)
    state: ServerState = api.state.taskcast
    asgi: ASGIApp = TraceContext(EventStreamRoute(api, state.streams))
    if token:
        asgi = BearerTokenAuth(asgi, token)
    if allowed_hosts is not None and ANY_HOST not in allowed_hosts:
        asgi = HostCheck(asgi, allowed_hosts)
    return asgi
