"""The HTTP/SSE server: ``create_app(app)`` is the ASGI application, ``serve`` runs it.

``create_api(app)`` is the FastAPI application inside it, for hosts that include it (or its
routers, with a ``ServerState`` installed: see ``state.py``) in their own.
"""

from .api import create_api, create_app
from .state import ServerState, install
from .streams import StreamSettings

__all__ = ["ServerState", "StreamSettings", "create_api", "create_app", "install"]
