"""The one vocabulary of event types the engine writes, and what each means for a run's state.

A run's log holds two kinds of events:

* **lifecycle events**, written only by the engine, each of which moves the run's state:
  ``scheduled`` (the run waits for its start time), ``queued``, ``started``, ``retrying``,
  ``interrupted``, exactly one terminal event (``completed``, ``failed``, ``cancelled``,
  ``timed_out``), and ``shutdown`` (the process
  stopped while the run was unfinished; its data says the state it was left in);
* **events of the run's own**: those its task emits (``progress``, ``log``, any other type),
  plus three the engine writes on request, ``signal`` (a signal was sent to it), ``child`` (it
  spawned a child run) and ``step`` (a durable step, sleep or signal taken was recorded:
  ``runs.steps``). These never change the state.

Every other module (the context refusing reserved types, ``/changes`` and the dashboard
following states, the engine and the worker) reads the names from here, so they cannot drift.
"""

from __future__ import annotations

from typing import Any

from .states import TERMINAL_STATES, RunState

SCHEDULED = "scheduled"
QUEUED = "queued"
STARTED = "started"
RETRYING = "retrying"
INTERRUPTED = "interrupted"
SHUTDOWN = "shutdown"
SIGNAL = "signal"
CHILD = "child"
STEP = "step"
PROGRESS = "progress"
LOG = "log"

TERMINAL_EVENT_TYPES = frozenset(state.value for state in TERMINAL_STATES)
"""The event type written when a run enters each terminal state (named like the state)."""

STATE_AFTER: dict[str, RunState] = {
    SCHEDULED: RunState.SCHEDULED,  # submitted with a start time; ``queued`` at that time
    QUEUED: RunState.QUEUED,
    STARTED: RunState.RUNNING,
    RETRYING: RunState.QUEUED,  # waits for its backoff, then ``started`` again
    INTERRUPTED: RunState.INTERRUPTED,  # its worker stopped; it is queued again or failed next
    **{state.value: state for state in TERMINAL_STATES},
}
"""The state a run is in right after each lifecycle event (``shutdown``: see ``state_after``)."""

LIFECYCLE_EVENT_TYPES = frozenset({*STATE_AFTER, SHUTDOWN})
"""Event types that change a run's state; only the engine writes them."""

RESERVED_EVENT_TYPES = LIFECYCLE_EVENT_TYPES | {SIGNAL, CHILD, STEP}
"""Event types a task may not emit itself (``ctx.emit`` refuses them)."""


def state_after(event_type: str, data: Any) -> RunState | None:
    """The state a run is in right after an event of ``event_type`` with ``data``, or ``None``
    for an event that does not change it (a task's own, ``signal``, ``child``, ``step``).

    ``shutdown`` leaves the run in the state its data names (``queued``, ``scheduled`` or
    ``interrupted``)."""
    if event_type == SHUTDOWN:
        named = data.get("state") if isinstance(data, dict) else None
        if named in (RunState.QUEUED.value, RunState.SCHEDULED.value):
            return RunState(named)
        return RunState.INTERRUPTED
    return STATE_AFTER.get(event_type)
