"""The bounds every door applies to numbers a caller chooses: timeouts and pending signals.

One place, so that ``@app.task(timeout=...)``, ``submit_with(timeout=...)``, ``POST /runs``,
``app.wait`` and ``ctx.signal`` agree on what a timeout is.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidRequest

MAX_TIMEOUT = 30 * 86400.0
"""The longest timeout anything takes, in seconds (30 days). ``None`` is no timeout; infinity
is not a number of seconds."""

MAX_PENDING_SIGNALS = 100
"""Signals of one name kept for a run that has not asked for them yet."""

MAX_PENDING_SIGNALS_PER_RUN = 1000
"""Signals of all names kept for a run that has not asked for them yet (``App`` default)."""


MAX_REASON = 1000
"""The longest cancel reason, in characters (the HTTP API's bound too)."""


def timeout_error(value: Any, what: str) -> str | None:
    """Why ``value`` is not a timeout (``what`` names it in the message), or None if it is."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{what} must be a number of seconds, got {value!r}"
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        return (
            f"{what} must be a positive number of seconds, at most {MAX_TIMEOUT:g} (30 days),"
            f" got {value!r}"
        )
    return None


def check_timeout(value: Any, what: str = "timeout") -> float | None:
    """``value`` if it is ``None`` or a timeout (finite, positive, at most 30 days), else
    ``InvalidRequest`` naming ``what``."""
    problem = timeout_error(value, what)
    if problem is not None:
        raise InvalidRequest(problem, param=what)
    return None if value is None else float(value)
