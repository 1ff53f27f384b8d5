"""taskcast.testing: a pytest plugin that makes async tests leak-free and deterministic.

Installing taskcast registers the plugin (entry point ``pytest11: taskcast``).
What it gives a test suite:

* the **leak guard**, on for every test: a test fails if it leaves tasks
  pending, coroutines never awaited, async generators unclosed, or sockets,
  transports and files open, and the failure shows where each was created.
  Opt one test out with ``@pytest.mark.allow_leaks(reason="...")``; turn it
  off with ``--taskcast-no-leak-guard`` or ``taskcast_leak_guard = false``;
* **virtual time**: ``@pytest.mark.virtual_time``, the ``virtual_time``
  fixture, or ``with virtual_time(): asyncio.run(...)``;
* **cancellation injection**: ``await cancel_at_each_await(fn, check)``;
* **deterministic schedules**: ``@pytest.mark.schedules(n=20)`` or
  ``explore(scenario)``; a failure prints the seed, ``--taskcast-seed`` replays it;
* **fault injection**: the ``faults`` fixture or :class:`Faults`, seeded the same way;
* **hang reports**: ``@pytest.mark.hang_timeout(seconds)`` or the ini option
  ``taskcast_hang_timeout``: a hung test's tasks are reported and cancelled.

See docs/testing.md for examples.
"""

from .cancellation import (
    BrokenAwait,
    CancellationReport,
    CancellationSafetyError,
    cancel_at_each_await,
)
from .clock import VirtualTime, virtual_time
from .faults import Faults, InjectedFault
from .hangs import HangWatchdog
from .schedules import Schedule, ScheduleFailure, explore, run_under_schedule

__all__ = [
    "BrokenAwait",
    "CancellationReport",
    "CancellationSafetyError",
    "Faults",
    "HangWatchdog",
    "InjectedFault",
    "Schedule",
    "ScheduleFailure",
    "VirtualTime",
    "cancel_at_each_await",
    "explore",
    "run_under_schedule",
    "virtual_time",
]
