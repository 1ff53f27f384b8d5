"""``submit --at TIME`` and ``--in DURATION``: when a person wants a run to start.

``--at`` takes an RFC 3339 time (``2030-01-01T09:00:00+01:00``); without an offset it is a
local time of this machine (``2030-01-01 09:00``), and a bare ``HH:MM`` is the next such time
today or tomorrow. ``--in`` takes seconds (``90``) or a number with its unit (``90s``, ``15m``,
``2h``, ``1d``). Both raise ``InvalidRequest`` naming the option, with an example.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from ..errors import InvalidRequest

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*\Z")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CLOCK = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*\Z")


def parse_in(text: str) -> float:
    """``"90s"`` -> 90.0 seconds (see the module docstring)."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidRequest(
            f"--in takes a duration such as 90s, 15m, 2h or 1d, got {text!r}", param="delay"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_at(text: str, now: datetime | None = None) -> datetime:
    """``"2030-01-01T09:00+01:00"``, ``"2030-01-01 09:00"`` (local) or ``"09:00"`` (the next
    one, local) as an aware datetime (see the module docstring)."""
    now = now or datetime.now().astimezone()
    clock = _CLOCK.match(text)
    if clock is not None:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour > 23 or minute > 59:
            raise InvalidRequest(f"--at {text!r} is not a time of day", param="run_at")
        when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return when if when > now else when + timedelta(days=1)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(
            f"--at takes a time such as 2030-01-01T09:00:00+01:00, 2030-01-01 09:00 (local) or"
            f" 09:00, got {text!r}",
            param="run_at",
        ) from None
    return when if when.tzinfo is not None else when.astimezone()
