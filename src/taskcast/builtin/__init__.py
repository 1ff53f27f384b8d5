"""Tasks that ship with taskcast.

``register_demo_tasks(app)`` adds the ``demo.*`` tasks; ``register_builtin_tasks(app)`` adds
``http.fetch`` (to public addresses, unless its ``FetchPolicy`` allows more) and, only with
``shell=True``, ``shell`` (otherwise a submit of ``shell`` says how to enable it).
"""

from ..app import App
from .demo import register_demo_tasks
from .fetch_guard import AddressNotAllowed, FetchPolicy
from .http_fetch import register_http_fetch
from .shell import refuse_shell, register_shell


def register_builtin_tasks(
    app: App, *, shell: bool = False, fetch: FetchPolicy | None = None
) -> None:
    """Register ``http.fetch`` (reaching what ``fetch`` allows; default: public addresses
    only) and (with ``shell=True``) ``shell`` on ``app``.

    A name the app already registers is left to the app's own task.
    """
    if "http.fetch" not in app.tasks:
        register_http_fetch(app, fetch)
    if "shell" in app.tasks:
        return
    if shell:
        register_shell(app)
    else:
        refuse_shell(app)


__all__ = [
    "AddressNotAllowed",
    "FetchPolicy",
    "register_builtin_tasks",
    "register_demo_tasks",
    "register_http_fetch",
    "register_shell",
]
