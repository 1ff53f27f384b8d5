"""Server-Sent Events, under one roof: run streams and the ``/changes`` feed.

* ``sse.py``: the one writer (keep-alive, write deadline, socket buffer cap, a client gone);
* ``runs.py``: a run's log as a stream: replay, then live through the run's broadcast;
* ``replay.py``: the loop share replays take together, and their cut when the server stops;
* ``broadcast.py``: one reader per watched run, fanning its batches out to every member;
* ``changes.py``: every run's lifecycle changes (``GET /changes``);
* ``service.py``: ``Streams``, what the streams of one server share;
* ``routes.py``: the routes, and the ASGI fast path for run streams;
* ``wire.py``, ``transport.py``, ``cursors.py``: bytes, sockets and cursors.
"""

from .routes import EventStreamRoute, router
from .service import Streams
from .sse import StreamSettings
from .transport import ExposeTransport

__all__ = ["EventStreamRoute", "ExposeTransport", "StreamSettings", "Streams", "router"]
