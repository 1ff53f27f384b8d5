"""What the routes of one server share, found through the request: ``request.app.state``.

``install`` puts a ``ServerState`` on a FastAPI application (``create_app`` does it for its
own); the routes get it, or the App alone, with the dependencies below. A host application
that includes taskcast's routers in its own FastAPI app installs one too, and starts and stops
it from its lifespan (``start``, ``stop``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI, Request

from ..app import App
from .errors import refuse_if_stopped
from .metrics import Metrics
from .streams import Streams, StreamSettings


@dataclass(eq=False)
class ServerState:
    """The App a server serves, its metrics and its event streams."""

    app: App
    settings: StreamSettings = field(default_factory=StreamSettings)
    metrics: Metrics = field(init=False)
    streams: Streams = field(init=False)
    _listening: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.app)
        self.streams = Streams(self.app, self.settings, self.metrics)

    async def start(self) -> None:
        """Start the App if it is not started yet, then listen to its commits (metrics, the
        ``/changes`` feed)."""
        if not self.app.started:
            await self.app.start()
        self.listen()

    def listen(self) -> None:
        """Listen to the started App's commits, once (harmless when already listening)."""
        if not self._listening and self.app.started and not self.app.stopped:
            self._listening = True
            self.metrics.attach()
            self.streams.start()

    async def stop(self) -> None:
        """Shut the App down if it is not stopped yet (every stream ends after its ``shutdown``
        event), then stop the broadcasts."""
        if self.app.started and not self.app.stopped:
            await self.app.shutdown()
        await self.streams.close()


def install(api: FastAPI, state: ServerState) -> None:
    """Make ``state`` the one the routes of ``api`` use."""
    api.state.taskcast = state


def state_of(request: Request) -> ServerState:
    """The ``ServerState`` of the application answering ``request`` (a dependency)."""
    state: ServerState = request.app.state.taskcast
    state.listen()  # when the host application started the App itself
    return state


def app_of(request: Request) -> App:
    """The App served (a dependency)."""
    return state_of(request).app


def require_open(request: Request) -> None:
    """Refuse with 503 once the App stopped (a dependency of the routes that read the store)."""
    refuse_if_stopped(app_of(request))
