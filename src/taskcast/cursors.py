"""Resume cursors: the ``seq`` after which a watcher reads a run's log.

A cursor travels as text (``Last-Event-ID: 41``, ``?after=41``, an SSE ``id:`` line) and is
read by one rule wherever it arrives: ASCII digits only (``str.isdigit`` also takes ``²`` and
other digits ``int`` cannot read), at most ``MAX_SEQ``, the largest integer every store keeps
(SQLite's and Redis's are signed 64-bit).
"""

from __future__ import annotations

from .errors import InvalidRequest

MAX_SEQ = 2**63 - 1
"""The largest seq and cursor: what a signed 64-bit integer holds."""

SEQ_PATTERN = r"^[0-9]{1,19}$"
"""The text of a cursor as a regular expression (OpenAPI documents it; ``MAX_SEQ`` bounds it)."""

_DIGITS = frozenset("0123456789")


def parse_seq(text: str) -> int | None:
    """The seq written as ``text`` (ASCII digits, at most ``MAX_SEQ``), or None if it is not
    one. Never raises: a text of any length is refused by its length before it is read."""
    if not 0 < len(text) <= 19 or not _DIGITS.issuperset(text):
        return None
    value = int(text)
    return value if value <= MAX_SEQ else None


def seq_error(text: str, what: str) -> str:
    """The message refusing ``text`` as the cursor ``what`` (``Last-Event-ID``, ``after``)."""
    shown = repr(text) if len(text) <= 40 else repr(text[:37]) + "..."
    return (
        f"{what} must be the seq of an event: ASCII digits, an integer from 0 to {MAX_SEQ},"
        f" got {shown}"
    )


def check_cursor(value: object, what: str = "after") -> int:
    """``value`` if it is a cursor (an ``int`` from 0 to ``MAX_SEQ``), else ``InvalidRequest``
    naming ``what``: the Python API's door, as ``parse_seq`` is the wire's."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise InvalidRequest(
            f"{what} must be the seq of an event, an integer from 0 to {MAX_SEQ}, got {value!r}",
            param=what,
        )
    return value
