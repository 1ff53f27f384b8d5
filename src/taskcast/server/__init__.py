"""The HTTP/SSE server: ``create_app(app)`` is the ASGI application, ``serve`` runs it."""

from .api import create_app
from .sse import StreamSettings

__all__ = ["StreamSettings", "create_app"]
