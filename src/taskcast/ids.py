"""Run ids: ULIDs (26 characters, Crockford base32), sortable by creation time.

Written by hand rather than taken from python-ulid because ids must also be *monotonic* within
one millisecond (runs submitted in a burst list in submit order), which that library does not do.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

RUN_ID_PATTERN = r"^(?:[A-Za-z0-9._~:-]{3,128}|[A-Za-z0-9_~:-][A-Za-z0-9._~:-]?|\.[A-Za-z0-9_~:-])$"
"""What a run id may be: generated ones are ULIDs; a chosen one (an idempotency key) is 1 to
128 characters that need no escaping in a URL path, a header or a log line, and not ``.`` or
``..``, which URLs drop as path segments (``/runs/..`` is ``/``). Written without look-ahead,
which pydantic's regular expressions do not have."""

_RUN_ID = re.compile(RUN_ID_PATTERN.replace("$", r"\Z"))


def is_run_id(value: object) -> bool:
    """True if ``value`` is a string a run id may be (``RUN_ID_PATTERN``)."""
    return isinstance(value, str) and _RUN_ID.match(value) is not None


_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
"""The 1,024 two-digit strings, indexed by the 10 bits they encode."""


class UlidGenerator:
    """Makes ULIDs that strictly increase within this process, even within one millisecond."""

    def __init__(self) -> None:
        self._last_ms = -1
        self._last_random = 0
        self._prefix = ""

    def new(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms <= self._last_ms:
            # Same (or earlier, if the clock stepped back) millisecond: count up from the last id.
            randomness = self._last_random + 1
        else:
            randomness = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for the increments
            self._last_ms = ms
            self._prefix = _encode(ms, 10)
        self._last_random = randomness
        return self._prefix + _encode_random(randomness)


def _encode_random(value: int) -> str:
    """The 80-bit ``value`` as 16 Crockford base32 digits (what ``_encode(value, 16)`` gives),
    two digits per table lookup: this runs once per run."""
    pairs = _PAIRS
    return "".join(
        (
            pairs[value >> 70],
            pairs[value >> 60 & 1023],
            pairs[value >> 50 & 1023],
            pairs[value >> 40 & 1023],
            pairs[value >> 30 & 1023],
            pairs[value >> 20 & 1023],
            pairs[value >> 10 & 1023],
            pairs[value & 1023],
        )
    )


def _encode(value: int, length: int) -> str:
    chars = [""] * length
    for index in range(length - 1, -1, -1):
        chars[index] = _ALPHABET[value & 31]
        value >>= 5
    return "".join(chars)


new_run_id = UlidGenerator().new


def ids_with_prefix_below(prefix: str) -> str:
    """A string above every run id that starts with ``prefix`` and below every other id above
    them: ids starting with ``prefix`` are those in ``[prefix, ids_with_prefix_below(prefix))``.

    Every character a run id may hold sorts below DEL (``\\x7f``), in Python, SQLite and Redis
    alike (they compare bytes)."""
    return prefix + "\x7f"


def derived_run_id(at: float, key: str) -> str:
    """A ULID made from a time (Unix seconds) and a ``key``, the same wherever and whenever it is
    made: its time part is ``at``, its random part a hash of ``key``. A schedule's tick uses it
    as the idempotency id of its run, so the tick starts one run however many processes (or
    restarts) try, and the run still sorts among the others by time."""
    digest = hashlib.sha256(key.encode()).digest()
    randomness = int.from_bytes(digest[:10], "big")
    return _encode(max(0, int(at * 1000)), 10) + _encode_random(randomness)
