"""``RateLimits``: the rate limits of this process's tasks, in one object.

A task with ``rate_limit="N/m"`` starts at most one run per ``60/N`` seconds (``RateLimit``:
evenly spaced, so no minute ever holds more than N starts), per task, or per value of its
``rate_key`` argument. The rule is GCRA: per key, the *theoretical arrival time* (``_next``) of
the next start; a start at ``now >= _next`` is allowed and moves ``_next`` to
``max(_next, now) + interval``.

A run that may not start yet waits in its key's *line*, in the order it got there, taking no
slot (``waiting_for`` says ``"rate_limit"``); one timer per line hands its head back to the ready
runs (``ready_again``) when its time comes, so the runs of one key start in order and a limited
key never holds up the others. Times are the event loop's (``loop.time()``), so the test kit's
virtual time moves them.

On a store shared by several processes the same rule runs in Redis, for the whole deployment
(``taskcast.queues.redis``); this object then has nothing to hold.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from .active import ActiveRun, Phase

_SWEEP_AT = 10_000
"""Keys remembered before those whose next start is already allowed are forgotten."""


class RateLimits:
    """The next allowed start per (task, key), and the lines of runs waiting for theirs."""

    def __init__(self, ready_again: Callable[[ActiveRun], None]) -> None:
        self._ready_again = ready_again
        self._next: dict[tuple[str, str | None], float] = {}
        self._lines: dict[tuple[str, str | None], deque[ActiveRun]] = {}
        self._timers: dict[tuple[str, str | None], asyncio.TimerHandle] = {}
        self._sweep_at = _SWEEP_AT

    @property
    def held(self) -> int:
        """Runs waiting in a line for their rate."""
        return sum(len(line) for line in self._lines.values())

    def admit(self, active: ActiveRun) -> bool:
        """True if the ready run ``active`` may start now (its start is counted); else it
        waits in its key's line (at the end, or still at its head) and False."""
        limit = active.definition.rate_limit
        if limit is None:
            return True
        key = (active.definition.name, active.rate_key)
        line = self._lines.get(key)
        if line and line[0] is not active:
            if active not in line:
                line.append(active)
            active.held = "rate_limit"
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        allowed_at = self._next.get(key, now)
        if allowed_at > now:
            if line is None:
                line = self._lines[key] = deque()
            if not line:
                line.append(active)
            active.held = "rate_limit"
            self._arm(key, allowed_at)
            return False
        if len(self._next) >= self._sweep_at:
            self._sweep(now)
        self._next[key] = max(allowed_at, now) + limit.interval
        active.held = None
        if line:  # it was the head
            line.popleft()
            if line:
                self._arm(key, self._next[key])
            else:
                del self._lines[key]
        return True

    def leave_line(self, active: ActiveRun) -> None:
        """Take a run that will not start (cancelled) out of its line."""
        if active.held != "rate_limit":
            return
        active.held = None
        key = (active.definition.name, active.rate_key)
        line = self._lines.get(key)
        if line is None or active not in line:
            return
        line.remove(active)
        if not line:
            del self._lines[key]
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        """Cancel the timers (shutdown: the runs in lines stay queued)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _arm(self, key: tuple[str, str | None], when: float) -> None:
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_at(when, self._turn_came, key)

    def _turn_came(self, key: tuple[str, str | None]) -> None:
        del self._timers[key]
        line = self._lines.get(key)
        while line and line[0].phase is not Phase.WAITING:
            line.popleft()  # cancelled while it waited
        if not line:
            self._lines.pop(key, None)
            return
        self._ready_again(line[0])

    def _sweep(self, now: float) -> None:
        """Forget keys whose next start is allowed already: they behave as if never seen."""
        for key in [key for key, when in self._next.items() if when <= now]:
            del self._next[key]
        # Sweep again when the map has doubled: amortised O(1) per start however many keys.
        self._sweep_at = max(_SWEEP_AT, 2 * len(self._next))
