"""The project's ASGI application with taskcast mounted in it (the project's ``asgi.py``).

```python
# mysite/asgi.py
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_application = get_asgi_application()

from taskcast.django.asgi import with_taskcast  # noqa: E402  (after Django is set up)

application = with_taskcast(django_application)
```

Requests under ``settings.TASKCAST["PREFIX"]`` (``/taskcast/``) go to taskcast's API and
dashboard, with access from Django's auth (``taskcast.django.access``); every other request
goes to Django. The ASGI lifespan (which Django does not handle) starts the App at startup and
stops it with grace at shutdown (``taskcast.server.embed``): run it with a server that sends
lifespan events (``uvicorn mysite.asgi:application``, ``daphne``, ``hypercorn``).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from starlette.types import ASGIApp, Receive, Scope, Send

from ..server.embed import Embedded
from .access import django_access
from .conf import get_app, options, prefix


def embedded() -> Embedded:
    """taskcast's API and dashboard for this project, with Django's auth."""
    return Embedded(get_app(), access=django_access, token=options()["TOKEN"])


def with_taskcast(django_application: ASGIApp) -> ASGIApp:
    """``django_application`` with taskcast mounted under the prefix and the lifespan handled
    (see the module docstring)."""
    tasks = embedded()
    mount = prefix()

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(tasks, receive, send)
            return
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == mount or path.startswith(mount + "/")):
            root = scope.get("root_path", "") + mount
            await tasks(
                {**scope, "root_path": root, "path": root + path[len(mount) :]}, receive, send
            )
            return
        await django_application(scope, receive, send)

    return application


async def _lifespan(tasks: Embedded, receive: Receive, send: Send) -> None:
    async with AsyncExitStack() as stack:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            await stack.enter_async_context(tasks.lifespan())
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": f"taskcast: {exc}"})
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        try:
            await stack.aclose()
        except Exception as exc:
            await send({"type": "lifespan.shutdown.failed", "message": f"taskcast: {exc}"})
            return
        await send({"type": "lifespan.shutdown.complete"})
