"""The event streams of one server: run streams (their broadcasts and their replay budget) and
the ``/changes`` feed, with the settings and the observer they share."""

from __future__ import annotations

from starlette.responses import Response

from ...app import App
from ..errors import refuse_if_stopped
from .broadcast import Hub
from .changes import RunChanges
from .cursors import resume_point
from .replay import ReplayBudget
from .runs import RunStream
from .sse import StreamObserver, StreamSettings


class _DropsOnly:
    """An observer that hears only of clients cut for not reading (``/changes`` streams are
    not counted among the open event streams, which are the runs')."""

    def __init__(self, observer: StreamObserver) -> None:
        self._observer = observer

    def stream_opened(self) -> None:
        pass

    def stream_closed(self) -> None:
        pass

    def stream_dropped(self) -> None:
        self._observer.stream_dropped()


class Streams:
    """Everything the event streams of ``app`` share. ``start`` once the app is started (the
    ``/changes`` feed listens to its commits), ``close`` once it stopped."""

    def __init__(self, app: App, settings: StreamSettings, observer: StreamObserver) -> None:
        self.app = app
        self.settings = settings
        self.observer = observer
        self.hub = Hub(app)
        self.replays = ReplayBudget()
        self.changes = RunChanges(app)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.changes.attach()

    async def close(self) -> None:
        await self.hub.close()

    async def open_run_stream(
        self, run_id: str, after: int | None, last_event_id: str | None
    ) -> Response:
        """The stream of ``run_id`` from ``Last-Event-ID`` or ``after`` (see ``resume_point``);
        204 when nothing is left to send. Raises ``RunNotFound``, ``InvalidRequest`` (a bad
        cursor), ``ShuttingDown``."""
        refuse_if_stopped(self.app)
        cursor = resume_point(last_event_id, after)
        run = await self.app.get(run_id)
        if run.is_finished and cursor >= run.last_seq:
            # An EventSource reconnects after every end of stream; 204 is what makes it stop.
            return Response(status_code=204)
        return RunStream(
            self.app,
            run_id,
            cursor,
            self.settings,
            self.observer,
            self.hub,
            replays=self.replays,
        )

    def changes_stream(self) -> Response:
        """A new ``/changes`` stream, from now on."""
        refuse_if_stopped(self.app)
        return self.changes.response(self.settings, _DropsOnly(self.observer))
