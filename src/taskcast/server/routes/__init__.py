"""The HTTP routes, as module-level ``APIRouter``s: each handler gets the App (or the whole
``ServerState``) from the request (``taskcast.server.state``), calls one App method and returns
its result as JSON. The stream routes are in ``taskcast.server.streams.routes``."""

from . import health, runs, schedules, stats

__all__ = ["health", "runs", "schedules", "stats"]
