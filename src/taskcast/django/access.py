"""Who a request to the mounted API is, from Django's auth (``taskcast.server.access``).

- ``Authorization: Bearer <settings.TASKCAST["TOKEN"]>``: a service; it sees and may do all.
- Otherwise the session cookie's user: its owner name is its primary key; it sees all runs
  with ``taskcast.view_all_runs``, submits with ``taskcast.submit_run``, cancels with
  ``taskcast.cancel_run`` (superusers have them all). Not signed in: 401.
- A request that changes something (not GET/HEAD/OPTIONS) signed by the session cookie must
  come from the same origin (its ``Origin`` header, which browsers send on such requests,
  names this host): another site cannot make a signed-in browser cancel or submit runs
  (the API takes JSON bodies, which a cross-site form cannot send, and no CSRF token).
"""

from __future__ import annotations

import hmac
from importlib import import_module
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest
from starlette.requests import Request

from ..server.access import Viewer
from .conf import options

SUBMIT = "taskcast.submit_run"
CANCEL = "taskcast.cancel_run"
VIEW_ALL = "taskcast.view_all_runs"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def viewer_of(user: Any) -> Viewer | None:
    """The ``Viewer`` of a Django user (None if not signed in)."""
    if user is None or not user.is_authenticated:
        return None
    return Viewer(
        owner=str(user.pk),
        see_all=user.has_perm(VIEW_ALL),
        submit=user.has_perm(SUBMIT),
        cancel=user.has_perm(CANCEL),
    )


def _session_viewer(session_key: str) -> Viewer | None:
    engine = import_module(settings.SESSION_ENGINE)
    request = HttpRequest()
    request.session = engine.SessionStore(session_key)
    return viewer_of(get_user(request))


async def django_access(request: Request) -> Viewer | None:
    """The viewer of a request to the mounted API (see the module docstring)."""
    token = options()["TOKEN"]
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if token and scheme.lower() == "bearer":
        if hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return Viewer(owner=None, see_all=True, submit=True, cancel=True)
        return None
    session_key = request.cookies.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    if request.method not in SAFE_METHODS and not _same_origin(request):
        return None
    viewer: Viewer | None = await sync_to_async(_session_viewer)(session_key)
    return viewer


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site request: browsers send Origin on those
    return urlsplit(origin).netloc == request.headers.get("host", "")
