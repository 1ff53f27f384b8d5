"""The policies of time and order a task or a run is given, checked where they enter.

* ``priority``: 0 to 9, higher first, with ageing (``AGEING``) so a low priority is never
  starved: see ``rank``;
* a start time: ``run_at`` (an aware datetime) or ``delay`` (seconds), at most ``MAX_AHEAD``
  ahead: see ``start_time``;
* ``RateLimit``: ``"N/s"``, ``"N/m"``, ``"N/h"``: starts spaced by at least ``period / N``;
* ``Retention``: how long, and how many, finished runs are kept before they are pruned.

One place, so that ``@app.task``, ``submit_with``, ``POST /runs``, the CLI and the stores agree.
Every check raises ``InvalidRequest`` naming the field (``param``) and what it may be.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import InvalidRequest

PRIORITIES = range(10)
"""The priorities a run may have: 0 (the default) to 9; a higher one starts first."""

AGEING = 60.0
"""Seconds of waiting that count as one level of priority (see ``rank``)."""

MAX_AHEAD = 365 * 86400.0
"""The furthest ahead a run may be scheduled, in seconds (a year)."""


def check_priority(value: Any, what: str = "priority") -> int:
    """``value`` if it is a priority (an integer 0 to 9), else ``InvalidRequest`` naming
    ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in PRIORITIES:
        raise InvalidRequest(
            f"{what} must be an integer from 0 to 9 (higher starts first), got {value!r}",
            param=what,
        )
    return value


def rank(ready_at: float, priority: int) -> float:
    """The order in which ready runs start: the smallest rank first.

    A run of priority ``p`` that became ready at ``ready_at`` (seconds) ranks as if it had been
    ready ``p * AGEING`` seconds earlier. So among runs ready at the same time a higher priority
    starts first, and a run waits behind newer runs of higher priority for at most
    ``9 * AGEING`` seconds (9 minutes): its rank is fixed while theirs keep growing. This is
    ageing (each ``AGEING`` seconds of waiting is worth one level) written as one number that
    does not change while the run waits, so the same order holds in a heap and in Redis.
    """
    return ready_at - priority * AGEING


def start_time(run_at: Any, delay: Any, now: float) -> float | None:
    """The Unix time a run submitted with ``run_at`` (an aware ``datetime``) or ``delay``
    (seconds from ``now``) may start, or None when neither is given.

    A time in the past (or a delay of 0) means at once, and is still returned (the run is
    queued without waiting). Raises ``InvalidRequest`` naming ``run_at`` or ``delay``: both
    given, a naive datetime (no offset), a delay that is not a finite number >= 0, or a time
    more than ``MAX_AHEAD`` (a year) ahead.
    """
    if run_at is not None and delay is not None:
        raise InvalidRequest("give run_at or delay, not both", param="run_at")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise InvalidRequest(f"delay must be a number of seconds, got {delay!r}", param="delay")
        if not (math.isfinite(delay) and 0 <= delay <= MAX_AHEAD):
            raise InvalidRequest(
                f"delay must be a number of seconds from 0 to {MAX_AHEAD:g} (a year),"
                f" got {delay!r}",
                param="delay",
            )
        return now + float(delay)
    if run_at is None:
        return None
    if not isinstance(run_at, datetime):
        raise InvalidRequest(
            f"run_at must be a datetime with a time zone, got {run_at!r}", param="run_at"
        )
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise InvalidRequest(
            f"run_at must say its offset from UTC (e.g. 2030-01-01T09:00:00+01:00),"
            f" got {run_at.isoformat()!r}",
            param="run_at",
        )
    when = run_at.timestamp()
    if when - now > MAX_AHEAD:
        raise InvalidRequest(
            f"run_at must be at most a year ahead, got {run_at.isoformat()!r}", param="run_at"
        )
    return when


_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"\s*([0-9]+)\s*/\s*([smh])\s*\Z")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` starts per ``period`` seconds, spaced evenly: two starts are at least
    ``interval = period / count`` apart, so no window of ``period`` seconds ever holds more than
    ``count`` starts (a GCRA without burst, as Celery spaces its rate limits)."""

    count: int
    period: float

    @property
    def interval(self) -> float:
        """Seconds between two starts, at least."""
        return self.period / self.count

    @classmethod
    def parse(cls, text: Any, what: str = "rate_limit") -> RateLimit:
        """``"100/m"`` -> ``RateLimit(100, 60.0)`` (``/s``, ``/m``, ``/h``). Raises
        ``InvalidRequest`` naming ``what``."""
        match = _RATE.match(text) if isinstance(text, str) else None
        if match is None or int(match.group(1)) < 1:
            raise InvalidRequest(
                f'{what} must be "N/s", "N/m" or "N/h" with N >= 1 (e.g. "100/m"), got {text!r}',
                param=what,
            )
        return cls(int(match.group(1)), _PERIODS[match.group(2)])

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}[self.period]
        return f"{self.count}/{unit}"


_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])\s*\Z")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class Retention:
    """How long (``age``, seconds since a run finished) and how many (``count``: the newest
    finished runs of each task) finished runs are kept; a run is pruned, with its log, once it
    is beyond either. ``None`` for both keeps everything (``Retention.forever()``).

    Only finished runs are pruned, never one that an unfinished run still waits for (``after``).
    """

    age: float | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if self.age is not None and not (
            isinstance(self.age, int | float) and math.isfinite(self.age) and self.age > 0
        ):
            raise InvalidRequest(
                f"retention age must be a number of seconds > 0, got {self.age!r}",
                param="retention",
            )
        if self.count is not None and (
            isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0
        ):
            raise InvalidRequest(
                f"retention count must be an integer >= 0, got {self.count!r}", param="retention"
            )

    @classmethod
    def forever(cls) -> Retention:
        """Keep every finished run (prune nothing)."""
        return cls()

    @property
    def keeps_everything(self) -> bool:
        return self.age is None and self.count is None

    @classmethod
    def parse(cls, value: Any, what: str = "retention") -> Retention:
        """A ``Retention`` from what a user writes: a ``Retention``; a number of seconds; or
        text: a duration with its unit (``90s``, ``30m``, ``1h``, ``7d``), a count (``10000``),
        both (``1h,10000``), or ``forever``. Raises ``InvalidRequest`` naming ``what``."""
        if isinstance(value, Retention):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls(age=value)
        if not isinstance(value, str):
            raise InvalidRequest(
                f"{what} must be a Retention, seconds or text like '7d' or '1h,10000',"
                f" got {value!r}",
                param=what,
            )
        if value.strip().lower() == "forever":
            return cls.forever()
        age: float | None = None
        count: int | None = None
        for part in value.split(","):
            duration = _DURATION.match(part)
            if duration is not None and age is None:
                age = float(duration.group(1)) * _UNITS[duration.group(2)]
            elif part.strip().isdigit() and count is None:
                count = int(part)
            else:
                raise InvalidRequest(
                    f"{what}: {part.strip()!r} is neither a duration with its unit (90s, 30m, 1h,"
                    " 7d) nor a count of runs (10000); write e.g. '7d', '10000' or '1h,10000'",
                    param=what,
                )
        return cls(age=age, count=count)

    def __str__(self) -> str:
        if self.keeps_everything:
            return "forever"
        parts = []
        if self.age is not None:
            parts.append(f"{self.age:g}s")
        if self.count is not None:
            parts.append(f"{self.count} runs")
        return ", ".join(parts)
