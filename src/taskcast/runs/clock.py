"""The engine's wall clock: Unix time that follows the event loop's clock.

Start times (``run_at``), schedule ticks and retention ages are wall-clock times: they are
stored, and must mean the same after a restart. Waiting for them is done with the loop's timers.
``now()`` is ``time.time()`` moved by as far as the loop's clock has moved from real monotonic
time: on a real loop (``loop.time()`` *is* ``time.monotonic()``) that is nothing, so it is the
system clock; under ``taskcast.testing``'s virtual time, where the loop's clock jumps to the
next timer, the wall clock jumps with it, so a run due in an hour is due when the loop's timer
for it fires, at once and deterministically.
"""

from __future__ import annotations

import asyncio
import time


def now() -> float:
    """The current Unix time, as the engine sees it (see the module docstring). Needs a
    running event loop."""
    loop = asyncio.get_running_loop()
    return time.time() + (loop.time() - time.monotonic())


def seconds_until(when: float) -> float:
    """Seconds from ``now()`` until the Unix time ``when`` (0 when it has passed)."""
    return max(0.0, when - now())
