"""taskcast inside another ASGI application (FastAPI, Starlette, Django): ``asgi(app)``.

``taskcast serve`` owns its process; an embedded taskcast lives in someone else's. The host
application mounts the returned ``Embedded`` under a prefix (``/taskcast``) and enters its
``lifespan`` from its own, which starts the App and stops it with grace, as ``serve`` does.

The order of a stop matters: a server stops accepting, then waits for open connections to end
before it runs the lifespan's shutdown. Event streams end only when the App shuts down, so a
lifespan that shut the App down at its end would wait for ever (or for the server's graceful
timeout, cutting every stream without its ``shutdown`` event). So while the lifespan is open
the first SIGINT or SIGTERM also begins the App's shutdown at once (the server's own handler
still runs first); the lifespan's end then waits for that shutdown to finish.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Annotated, Any

from asgi_lifespan import LifespanManager
from fastapi import Header
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..app import App
from ..runs.shutdown import ShutdownReport
from .access import Access, AccessControl
from .api import create_app
from .body_limit import DEFAULT_MAX_BODY
from .streams import StreamSettings

logger = logging.getLogger("taskcast")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Embedded:
    """The HTTP API and dashboard of ``app`` as an ASGI application to mount in another.

    ``await`` nothing on it: mount it (``api.mount("/taskcast", embedded)``) and enter
    ``embedded.lifespan()`` from the host's lifespan. Paths are served relative to the mount
    (``root_path``), so the dashboard works under any prefix. ``app_dependency`` and
    ``require_token`` are FastAPI dependencies for the host's own routes.
    """

    def __init__(
        self,
        app: App,
        *,
        token: str | None = None,
        access: Access | None = None,
        stream_settings: StreamSettings | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.app = app
        self.token = token
        # Under access control, ``access`` decides about tokens too (a service's token is one
        # more kind of viewer); the bearer check would refuse the signed-in users.
        inner = create_app(
            app,
            token=None if access is not None else token,
            stream_settings=stream_settings,
            max_body=max_body,
        )
        self._asgi: ASGIApp = inner if access is None else AccessControl(inner, app, access)
        self.report: ShutdownReport | None = None
        self._stopping: asyncio.Task[ShutdownReport] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            root: str = scope.get("root_path", "")
            if root and scope["path"] == root and scope["type"] == "http":
                # The dashboard's links are relative to its page: it must end with a slash.
                await RedirectResponse(root + "/", status_code=307)(scope, receive, send)
                return
            scope = _relative(scope)
        await self._asgi(scope, receive, send)

    @asynccontextmanager
    async def lifespan(self, host: Any = None) -> AsyncIterator[None]:
        """Start the App (unless started) and the API's own lifespan; on exit, shut the App
        down with its ``grace`` and ``shutdown_timeout`` (begun already if a stop signal
        came: see the module docstring) and wait for it. ``host`` is ignored: it lets
        ``FastAPI(lifespan=embedded.lifespan)`` pass its application. Raises what
        ``App.start`` raises (``StoreError``)."""
        if not self.app.started:
            await self.app.start()
        async with LifespanManager(self._asgi, startup_timeout=None, shutdown_timeout=None):
            loop = asyncio.get_running_loop()
            restore = self._watch_signals(loop)
            try:
                yield
            finally:
                restore()
                self.report = await self._shutdown()

    def begin_shutdown(self) -> None:
        """Begin the App's shutdown now, without waiting (the lifespan's end awaits it)."""
        if self._stopping is None:
            logger.info("stopping: new runs are refused; running runs get their grace")
            self._stopping = asyncio.get_running_loop().create_task(
                self.app.shutdown(), name="taskcast shutdown"
            )

    def _shutdown_then_raise(self, signum: int) -> None:
        self.begin_shutdown()
        assert self._stopping is not None

        def default_action(_: object) -> None:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

        self._stopping.add_done_callback(default_action)

    async def _shutdown(self) -> ShutdownReport:
        self.begin_shutdown()
        assert self._stopping is not None
        report = await self._stopping
        logger.info("%s", report)
        return report

    def _watch_signals(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Chain a handler before the server's for SIGINT/SIGTERM; returns its undoing."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # signals are the main thread's; a test's thread has none
        previous: dict[int, Any] = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

        def handle(signum: int, frame: FrameType | None) -> None:
            before = previous[signum]
            if before == signal.SIG_IGN:
                return
            if callable(before):
                before(signum, frame)
                loop.call_soon_threadsafe(self.begin_shutdown)
            else:
                # Nobody else handles it (SIG_DFL): stop the App cleanly, then let the
                # signal's default action end the process as it would have.
                loop.call_soon_threadsafe(self._shutdown_then_raise, signum)

        for signum in STOP_SIGNALS:
            signal.signal(signum, handle)

        def restore() -> None:
            for signum, before in previous.items():
                if signal.getsignal(signum) is handle:
                    signal.signal(signum, before)

        return restore

    def app_dependency(self) -> App:
        """FastAPI dependency: the App (``app: App = Depends(embedded.app_dependency)``)."""
        return self.app

    def require_token(
        self, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
    ) -> None:
        """FastAPI dependency: 401 unless the request sends ``Authorization: Bearer <token>``
        with the token given to ``asgi`` (compared in constant time); nothing to check
        without one."""
        if self.token is None:
            return
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.token.encode()
        ):
            return
        raise HTTPException(
            401,
            "send the header 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def asgi(
    app: App,
    *,
    token: str | None = None,
    access: Access | None = None,
    stream_settings: StreamSettings | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> Embedded:
    """The HTTP API and dashboard of ``app``, to mount inside your own ASGI application.

    ``token``: require this bearer token, as ``serve --token`` does. ``access``: decide per
    request who may see, submit and cancel which runs (``taskcast.server.access``; Django's
    integration passes one built from Django's auth). See ``Embedded`` and docs/fastapi.md.
    """
    return Embedded(
        app, token=token, access=access, stream_settings=stream_settings, max_body=max_body
    )


def _relative(scope: Scope) -> Scope:
    """The scope with ``path`` relative to the mount point (``root_path``).

    Starlette's ``Mount`` keeps the full path and sets ``root_path``; taskcast's routes and
    middleware read ``path`` as the API's own (``/runs/...``)."""
    root: str = scope.get("root_path", "")
    path: str = scope["path"]
    if root and path.startswith(root):
        relative = path[len(root) :] or "/"
        return {**scope, "path": relative, "raw_path": relative.encode()}
    return scope
