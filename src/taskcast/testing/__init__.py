"""taskcast.testing: a pytest plugin that makes async tests leak-free and deterministic.

Installing taskcast registers the plugin (entry point ``pytest11: taskcast``). It
does nothing until a test asks for a feature. What it gives a test suite:

* the **leak guard**, on when enabled (ini ``taskcast_leak_guard = true`` or
  ``--taskcast-leaks``): a test fails if it leaves tasks pending, coroutines
  never awaited, async generators unclosed, subprocesses or executor jobs
  running, or sockets, transports and files open, and the failure shows where
  each was created. Opt one test out with ``@pytest.mark.allow_leaks(reason="...")``;
* **virtual time**: ``@pytest.mark.virtual_time``, the ``virtual_time``
  fixture, or ``with virtual_time(): asyncio.run(...)``;
* **cancellation injection**: ``await cancel_at_each_await(fn, check)``;
* **deterministic schedules**: ``@pytest.mark.schedules(n=20)`` or
  ``explore(scenario)``; a failure prints the seed, ``--taskcast-seed`` replays it;
* **fault injection**: the ``faults`` fixture or :class:`Faults`, seeded the same way;
* **hang reports**: ``@pytest.mark.hang_timeout(seconds)`` or the ini option
  ``taskcast_hang_timeout``: a hung test's tasks are reported and cancelled.

The names below load on first use, so the plugin costs a suite that uses none
of them only the import of this package. See docs/testing.md for examples.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LAZY = {
    "BrokenAwait": "cancellation",
    "CancellationReport": "cancellation",
    "CancellationSafetyError": "cancellation",
    "cancel_at_each_await": "cancellation",
    "VirtualTime": "clock",
    "virtual_time": "clock",
    "Faults": "faults",
    "InjectedFault": "faults",
    "HangWatchdog": "hangs",
    "Schedule": "schedules",
    "ScheduleFailure": "schedules",
    "explore": "schedules",
    "run_under_schedule": "schedules",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskcast.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
