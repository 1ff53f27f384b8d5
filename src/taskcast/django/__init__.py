"""taskcast in a Django project: ``"taskcast.django"`` in ``INSTALLED_APPS`` (docs/django.md).

In an app's ``tasks.py``::

    from taskcast.django import task

    @task(timeout=600)
    def import_rows(ctx, batch: Batch) -> int:   # batch: the Batch's primary key in the run
        ...

From a view (sync or async)::

    run = taskcast.django.submit(request, "import_rows", batch=batch)    # or await asubmit(...)
    taskcast.django.cancel(request, run.id)                              # or await acancel(...)
    taskcast.django.watch_url(run.id)       # the SSE URL for the page's EventSource

``submit`` needs the ``taskcast.submit_run`` permission and makes the user the run's owner;
``cancel`` needs ``taskcast.cancel_run`` and a run the user sees (its own, or any with
``taskcast.view_all_runs``); both raise ``PermissionDenied`` (403) or ``Http404``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from django.http import HttpRequest

    from ..app import App
    from ..models import Event, Run

_F = TypeVar("_F", bound=Callable[..., Any])


def get_app() -> App:
    """The project's App (``settings.TASKCAST``)."""
    from .conf import get_app as made

    return made()


def task(function: Any = None, /, **policy: Any) -> Any:
    """Register a task of the project (decorator, with or without ``App.task``'s arguments).

    Sync bodies run in worker threads with ``close_old_connections`` around each run; a
    parameter annotated with a model class takes the instance's primary key in the run's
    arguments and gives the body the instance (``taskcast.django.bodies``)."""
    from .bodies import django_body

    def register(fn: _F) -> _F:
        get_app().task(django_body(fn), **policy)
        return fn

    return register(function) if function is not None else register


def watch_url(run_id: str) -> str:
    """The URL of the run's event stream (``/taskcast/runs/<id>/events``), for an EventSource
    on the user's page (the session cookie signs it)."""
    from .conf import prefix

    return f"{prefix()}/runs/{run_id}/events"


def _user(request: HttpRequest) -> Any:
    from django.core.exceptions import PermissionDenied

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise PermissionDenied("sign in to use taskcast")
    return user


def _need(user: Any, permission: str) -> None:
    from django.core.exceptions import PermissionDenied

    if not user.has_perm(permission):
        raise PermissionDenied(f"the permission {permission} is needed")


async def asubmit(request: HttpRequest, task: str, /, **args: Any) -> Run:
    """Submit a run of ``task`` for the request's user (its owner); model instances in
    ``args`` are passed by primary key. Raises ``PermissionDenied`` and what
    ``App.submit_with`` raises (``UnknownTask``, ``InvalidArguments``, ``QueueFull``...)."""
    from asgiref.sync import sync_to_async

    from .access import SUBMIT
    from .bodies import as_arguments

    user = await request.auser()
    if user is None or not user.is_authenticated:
        _user(request)
    await sync_to_async(_need)(user, SUBMIT)
    return await get_app().submit_with(task, as_arguments(args), owner=str(user.pk))


def submit(request: HttpRequest, task: str, /, **args: Any) -> Run:
    """``asubmit`` for sync views (the App runs in the ASGI server's event loop)."""
    from asgiref.sync import async_to_sync

    from .access import SUBMIT
    from .bodies import as_arguments

    user = _user(request)
    _need(user, SUBMIT)
    submitting = get_app().submit_with
    run: Run = async_to_sync(submitting)(task, as_arguments(args), owner=str(user.pk))
    return run


async def _visible(user: Any, run_id: str) -> Run:
    from asgiref.sync import sync_to_async
    from django.http import Http404

    from ..errors import RunNotFound
    from .access import viewer_of

    viewer = await sync_to_async(viewer_of)(user)
    try:
        run = await get_app().get(run_id)
    except RunNotFound:
        raise Http404(f"no run with id {run_id!r}") from None
    if viewer is None or not viewer.sees(run.owner):
        raise Http404(f"no run with id {run_id!r}")
    return run


async def acancel(request: HttpRequest, run_id: str, reason: str = "cancelled") -> bool:
    """Cancel a run the request's user sees, with ``taskcast.cancel_run``; True if it will
    end ``cancelled`` (False: it had finished). Raises ``PermissionDenied`` or ``Http404``."""
    from asgiref.sync import sync_to_async

    from .access import CANCEL

    user = await request.auser()
    if user is None or not user.is_authenticated:
        _user(request)
    await sync_to_async(_need)(user, CANCEL)
    await _visible(user, run_id)
    return await get_app().cancel(run_id, reason)


def cancel(request: HttpRequest, run_id: str, reason: str = "cancelled") -> bool:
    """``acancel`` for sync views."""
    from asgiref.sync import async_to_sync

    from .access import CANCEL

    user = _user(request)
    _need(user, CANCEL)

    async def cancelling() -> bool:
        await _visible(user, run_id)
        return await get_app().cancel(run_id, reason)

    cancelled: bool = async_to_sync(cancelling)()
    return cancelled


async def aevents(request: HttpRequest, run_id: str, after: int = 0) -> AsyncIterator[Event]:
    """The events of a run the request's user sees (replay, then live), for async views;
    ends after the terminal event. Raises ``Http404``."""
    user = await request.auser()
    await _visible(user, run_id)
    async for event in get_app().events(run_id, after):
        yield event
