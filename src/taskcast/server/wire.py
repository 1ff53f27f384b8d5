"""The bytes of an event stream: SSE events, and the HTTP/1.1 chunks that carry them."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Event


def encode_events(events: Sequence[Event]) -> bytes:
    """The SSE wire form of ``events``, in order: ``id``, ``event``, ``at`` and ``data`` lines each.

    ``data`` is the event's JSON, encoded once by the engine however many clients get it; it
    holds no newline, so it is always one line. ``at`` is the event's time (Unix seconds, as
    ``repr`` writes it, so a client reads back the very same float); EventSource ignores fields it
    does not know, and the Python client fills ``Event.at`` from it.
    """
    return "".join(
        [
            f"id: {event.seq}\nevent: {event.type}\nat: {event.at!r}\ndata: {event.data_json()}\n\n"
            for event in events
        ]
    ).encode()


def chunk(payload: bytes) -> bytes:
    """``payload`` framed as one HTTP/1.1 chunk (a stream's body uses chunked encoding)."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)
