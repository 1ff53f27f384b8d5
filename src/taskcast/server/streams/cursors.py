"""Where a run stream starts: the cursor of ``?after=`` or of ``Last-Event-ID``."""

from __future__ import annotations

from ...cursors import parse_seq, seq_error
from ...errors import InvalidRequest


def read_cursor(text: str, location: str, name: str) -> int:
    """``text`` as the cursor ``name`` sent in the request's ``location`` (``query``,
    ``header``): see ``taskcast.cursors``. Raises ``InvalidRequest`` naming it, with the same
    ``problems`` a validation error has."""
    seq = parse_seq(text)
    if seq is None:
        problem = seq_error(text, name)
        raise InvalidRequest(
            f"the request is not valid: {location}.{name}: {problem}",
            problems=[{"param": f"{location}.{name}", "problem": problem}],
        )
    return seq


def resume_point(last_event_id: str | None, after: int | None) -> int:
    """Where a stream starts: after ``Last-Event-ID`` if sent (a reconnect), else ``after``.

    The header wins because an EventSource reconnects to the same URL: its ``?after=`` is the
    page's starting point, the header is how far it got since. Raises ``InvalidRequest`` naming
    ``Last-Event-ID`` for a header that is not a seq (``taskcast.cursors``: we only ever send
    seqs as ids).
    """
    text = None if last_event_id is None else last_event_id.strip(" \t")  # HTTP's spaces
    if text:
        return read_cursor(text, "header", "Last-Event-ID")
    return after or 0
