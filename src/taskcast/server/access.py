"""Who may see, submit and cancel which runs: access control in front of the HTTP API.

An embedding application (Django's auth, a FastAPI app's users) passes ``access``: an async
function from the request to a ``Viewer`` (or None: not signed in, 401). ``AccessControl``
then holds every route to it, without the routes knowing:

- a run is visible to its owner, or to a viewer with ``see_all``; any other run answers 404
  as if it did not exist (``GET /runs/{id}``, its events, cancel, retry, signals);
- ``GET /runs`` lists the viewer's own runs only (its ``owner`` filter is set, whatever the
  query said), unless ``see_all``;
- ``POST /runs``, retry and signals need ``submit``; cancel needs ``cancel`` (403 otherwise);
  a run submitted over HTTP is owned by the viewer (``owner_of_submit``): naming another owner
  needs ``see_all``;
- ``GET /changes`` sends a viewer without ``see_all`` the changes of its own runs only, and
  no ``counts`` (they count everyone's runs);
- ``/stats``, ``/metrics`` and the schedules need ``see_all``; ``/tasks`` any viewer;
  ``/health``, the dashboard's page and the API docs are open as ever.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..app import App
from ..errors import RunNotFound, TaskcastError
from ..owners import is_owner
from .auth import _is_open
from .errors import error_body, error_response, send_error


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who makes a request, as the embedding application's ``access`` function says.

    ``owner``: the name stamped on the runs this viewer submits, and the runs it sees
    (``taskcast.owners`` rules; None only with ``see_all``). ``see_all``: every run, the
    counts, statistics, metrics and schedules. ``submit``: may submit, retry and signal runs.
    ``cancel``: may cancel the runs it sees.
    """

    owner: str | None
    see_all: bool = False
    submit: bool = False
    cancel: bool = False

    def __post_init__(self) -> None:
        if self.owner is None and not self.see_all:
            raise ValueError("a Viewer without see_all needs an owner")
        if self.owner is not None and not is_owner(self.owner):
            raise ValueError(f"owner {self.owner!r} is not a valid owner (taskcast.owners)")

    def sees(self, owner: str | None) -> bool:
        """True if this viewer may see a run owned by ``owner``."""
        return self.see_all or (owner is not None and owner == self.owner)


Access = Callable[[Request], Awaitable[Viewer | None]]
"""``async def access(request) -> Viewer | None``: None for a request nobody signed."""

_viewer: ContextVar[Viewer | None] = ContextVar("taskcast_viewer", default=None)

RUN_PATH = re.compile(r"/runs/([A-Za-z0-9._~:-]{1,128})(/.*)?")
SEE_ALL_PATHS = ("/stats", "/metrics", "/schedules")
SEEN_CACHE = 10_000
"""Owners of runs remembered by a ``/changes`` filter (they never change)."""


class Forbidden(TaskcastError):
    """The viewer may not do this (a permission is missing)."""

    code = "forbidden"
    status = 403


def owner_of_submit(named: str | None) -> str | None:
    """The owner of a run submitted over HTTP: the viewer (under access control), or what the
    body named (without it). Raises ``Forbidden`` if the body names someone else and the
    viewer may not see all runs."""
    viewer = _viewer.get()
    if viewer is None:
        return named
    if named is None or named == viewer.owner:
        return viewer.owner
    if viewer.see_all:
        return named
    raise Forbidden(
        f"owner {named!r} is not you: runs you submit are owned by {viewer.owner!r}",
        param="owner",
    )


class AccessControl:
    """ASGI middleware holding the API to ``access`` (see the module docstring)."""

    def __init__(self, asgi: ASGIApp, app: App, access: Access) -> None:
        self._asgi = asgi
        self._app = app
        self._access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_open(scope["path"]):
            await self._asgi(scope, receive, send)
            return
        viewer = await self._access(Request(scope))
        if viewer is None:
            body = error_body("unauthorized", "sign in first: this API serves signed-in users")
            await send_error(send, 401, body)
            return
        reset = _viewer.set(viewer)
        try:
            try:
                scope, send = await self._admit(scope, send, viewer)
            except TaskcastError as error:
                await error_response(error)(scope, receive, send)
                return
            await self._asgi(scope, receive, send)
        finally:
            _viewer.reset(reset)

    async def _admit(self, scope: Scope, send: Send, viewer: Viewer) -> tuple[Scope, Send]:
        """The request as it may go on (a listing narrowed to the viewer's runs, a stream of
        changes filtered), or raises ``Forbidden``/``RunNotFound``."""
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/runs":
            if method == "POST":
                _need(viewer.submit, "submit runs")
            elif not viewer.see_all:
                return _only_own(scope, viewer), send
            return scope, send
        found = RUN_PATH.fullmatch(path)
        if found is not None:
            await self._check_run(found.group(1), viewer)
            rest = found.group(2) or ""
            if method == "POST" and rest == "/cancel":
                _need(viewer.cancel, "cancel runs")
            elif method == "POST":
                _need(viewer.submit, "submit runs")
            return scope, send
        if path.startswith(SEE_ALL_PATHS):
            _need(viewer.see_all, "see every run")
        if path == "/changes" and not viewer.see_all:
            return scope, _OwnChanges(send, self._app, viewer).send
        return scope, send

    async def _check_run(self, run_id: str, viewer: Viewer) -> None:
        if viewer.see_all:
            return
        try:
            run = await self._app.get(run_id)
        except RunNotFound:
            return  # the route answers 404 itself
        if not viewer.sees(run.owner):
            raise RunNotFound(run_id)


def _need(allowed: bool, what: str) -> None:
    if not allowed:
        raise Forbidden(f"you do not have the permission to {what}")


def _only_own(scope: Scope, viewer: Viewer) -> Scope:
    """``scope`` with its query's ``owner`` set to the viewer (any other ``owner`` dropped)."""
    query = [
        (key, value)
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
        if key != "owner"
    ]
    query.append(("owner", viewer.owner or ""))
    return {**scope, "query_string": urlencode(query).encode("latin-1")}


class _OwnChanges:
    """A ``send`` that passes on the ``/changes`` frames of the viewer's own runs only."""

    def __init__(self, send: Send, app: App, viewer: Viewer) -> None:
        self._send = send
        self._app = app
        self._viewer = viewer
        self._pending = b""
        self._owners: OrderedDict[str, str | None] = OrderedDict()

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        data = self._pending + message.get("body", b"")
        frames = data.split(b"\n\n")
        self._pending = frames.pop()
        kept = [frame for frame in frames if await self._keep(frame)]
        body = b"".join(frame + b"\n\n" for frame in kept)
        if not message.get("more_body", False):
            body += self._pending
            self._pending = b""
        await self._send({**message, "body": body})

    async def _keep(self, frame: bytes) -> bool:
        kind = b""
        data = b""
        for line in frame.split(b"\n"):
            if line.startswith(b"event:"):
                kind = line[6:].strip()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if kind == b"counts":
            return False
        if kind != b"run":
            return True  # comments (keep-alive), reset, shutdown
        try:
            run_id = json.loads(data)["id"]
        except (ValueError, KeyError, TypeError):
            return False
        return self._viewer.sees(await self._owner(run_id))

    async def _owner(self, run_id: str) -> str | None:
        if run_id in self._owners:
            return self._owners[run_id]
        try:
            owner = (await self._app.get(run_id)).owner
        except TaskcastError:
            return None
        self._owners[run_id] = owner
        if len(self._owners) > SEEN_CACHE:
            self._owners.popitem(last=False)
        return owner


def current_viewer() -> Viewer | None:
    """The viewer of the request being served under access control, or None."""
    return _viewer.get()
