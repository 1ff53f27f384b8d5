"""The bytes of an event stream: SSE events, and the HTTP/1.1 chunks that carry them."""

from __future__ import annotations

from collections.abc import Sequence

from ...models import Event


def encode_events(events: Sequence[Event]) -> bytes:
    """The SSE wire form of ``events``, in order (``Event.sse_frame``: each event is encoded once
    for every stream that sends it). EventSource ignores the ``at`` field; the Python client fills
    ``Event.at`` from it."""
    return b"".join([event.sse_frame() for event in events])


def chunk(payload: bytes) -> bytes:
    """``payload`` framed as one HTTP/1.1 chunk (a stream's body uses chunked encoding)."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)
