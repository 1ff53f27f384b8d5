"""``settings.TASKCAST``: the App of a Django project, made once from the settings.

```python
TASKCAST = {
    "STORE": "sqlite:///taskcast.db",  # or redis://HOST:PORT/DB (default: sqlite:///taskcast.db)
    "TOKEN": None,            # a bearer token for services: it sees and may do everything
    "PREFIX": "/taskcast/",   # where asgi.py mounts the API and the dashboard
    "MAX_CONCURRENCY": 100,   # runs executing at once in this process
    "MAX_QUEUE": 10_000,      # runs waiting; beyond it submit raises QueueFull
    "GRACE": 10.0,            # seconds running runs get to finish on shutdown
    "SHUTDOWN_TIMEOUT": 5.0,  # then seconds cancelled runs get to clean up
    "CANCEL_TIMEOUT": 10.0,   # seconds a cancelled body may ignore the cancel
    "WORKER": True,           # False: run no task here (Redis; manage.py taskcast_worker runs them)
    "RETENTION": None,        # how long finished runs are kept ("7d", "1h,10000"...)
}
```

Unknown keys and bad values raise ``ImproperlyConfigured`` naming them, at start.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..app import App

DEFAULTS: dict[str, Any] = {
    "STORE": "sqlite:///taskcast.db",
    "TOKEN": None,
    "PREFIX": "/taskcast/",
    "MAX_CONCURRENCY": 100,
    "MAX_QUEUE": 10_000,
    "GRACE": 10.0,
    "SHUTDOWN_TIMEOUT": 5.0,
    "CANCEL_TIMEOUT": 10.0,
    "WORKER": True,
    "RETENTION": None,
}

_app: App | None = None


def options() -> dict[str, Any]:
    """``settings.TASKCAST`` over the defaults; ``ImproperlyConfigured`` names a bad key."""
    given = getattr(settings, "TASKCAST", {})
    if not isinstance(given, dict):
        raise ImproperlyConfigured("settings.TASKCAST must be a dict")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(
            f"settings.TASKCAST has unknown keys {unknown}; known: {sorted(DEFAULTS)}"
        )
    merged = {**DEFAULTS, **given}
    prefix = merged["PREFIX"]
    if not (isinstance(prefix, str) and prefix.startswith("/") and prefix.endswith("/")):
        raise ImproperlyConfigured(
            f"settings.TASKCAST['PREFIX'] must start and end with '/', got {prefix!r}"
        )
    token = merged["TOKEN"]
    if token is not None and not (isinstance(token, str) and token):
        raise ImproperlyConfigured("settings.TASKCAST['TOKEN'] must be a non-empty string")
    return merged


def get_app() -> App:
    """The project's App (made on first use from ``settings.TASKCAST``)."""
    global _app
    if _app is None:
        merged = options()
        try:
            _app = App(
                merged["STORE"],
                max_concurrency=merged["MAX_CONCURRENCY"],
                max_queue=merged["MAX_QUEUE"],
                grace=merged["GRACE"],
                shutdown_timeout=merged["SHUTDOWN_TIMEOUT"],
                cancel_timeout=merged["CANCEL_TIMEOUT"],
                worker=merged["WORKER"],
                retention=merged["RETENTION"],
            )
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(f"settings.TASKCAST: {exc}") from None
    return _app


def prefix() -> str:
    """Where the API is mounted, without its last slash (``/taskcast``)."""
    return str(options()["PREFIX"]).rstrip("/")
