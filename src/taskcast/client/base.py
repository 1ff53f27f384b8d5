"""What ``AsyncClient`` and ``Client`` share: construction, settings and documentation.

Both only send ``Call``s (``calls.py``) over their own pool of connections; the one
difference is how they wait. So the constructor is written once here, and ``Client`` takes
each method's documentation from ``AsyncClient`` (``documented_like``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from .config import ClientConfig
from .stream import ReconnectPolicy

C = TypeVar("C", bound=type)


class ClientBase:
    """A taskcast server at ``url`` (``http://host:port``), over one pool of connections.

    ``token``: the server's bearer token. ``uds``: reach the server through this Unix socket
    (``url`` then only names it). ``timeout``: seconds to connect, send, and wait for each
    answer. Event streams wait up to ``read_timeout`` seconds for data (keep-alive comments
    count; keep it above the server's ``--keepalive``, 15 s by default): a connection silent
    longer is taken for dead and replaced. After a break a stream reconnects up to
    ``reconnects`` times in a row, waiting the server's ``retry:`` hint doubled per failure and
    capped at ``max_reconnect_delay`` seconds, with jitter.

    Methods raise the typed errors of the in-process API (``RunNotFound``, ``QueueFull``...)
    with the server's message, ``Unauthorized`` for a missing or wrong token, ``ServerError``
    for an answer of another kind, and ``ConnectionFailed`` when the server cannot be reached
    or the connection breaks.
    """

    _http_class: ClassVar[Callable[..., Any]]
    _transport_class: ClassVar[Callable[..., Any]]

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        uds: str | None = None,
        timeout: float = 30.0,
        read_timeout: float = 60.0,
        reconnects: int = 10,
        max_reconnect_delay: float = 30.0,
    ) -> None:
        self._config = ClientConfig(
            url, token, timeout, read_timeout, ReconnectPolicy(reconnects, max_reconnect_delay)
        )
        transport = self._transport_class(uds=uds) if uds else None
        self._http = self._http_class(**self._config.http_options(), transport=transport)

    @property
    def url(self) -> str:
        """The server's URL."""
        return self._config.url


def documented_like(model: type) -> Callable[[C], C]:
    """Give each public method of the decorated class that has no docstring of its own the
    docstring of ``model``'s method of the same name (the blocking client says what the async
    one does)."""

    def document(cls: C) -> C:
        for name, member in vars(cls).items():
            if name.startswith("_") or not callable(member) or member.__doc__:
                continue
            source = getattr(model, name, None)
            if source is not None and source.__doc__:
                member.__doc__ = source.__doc__
        return cls

    return document
