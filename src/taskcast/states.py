"""Run states and the one table of allowed transitions.

A run moves ``queued -> running -> <terminal>``; a run submitted with a start time (``run_at`` or
``delay``) is ``scheduled`` first, and becomes ``queued`` at its time (or ``cancelled`` before).
``running -> queued`` is a retry waiting for its backoff; ``interrupted`` is a run that was
running when its process stopped; on the next start it goes back to ``queued`` (a new attempt) or
to ``failed``. Terminal states have no way out, which is what makes "exactly one terminal state
per run" a property of this table plus a compare-and-set in the store.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED, RunState.TIMED_OUT}
)

ALLOWED_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.SCHEDULED: frozenset({RunState.QUEUED, RunState.CANCELLED}),
    RunState.QUEUED: frozenset(
        {RunState.RUNNING, RunState.CANCELLED, RunState.FAILED, RunState.QUEUED}
    ),
    RunState.RUNNING: frozenset(
        {
            RunState.COMPLETED,
            RunState.FAILED,
            RunState.CANCELLED,
            RunState.TIMED_OUT,
            RunState.QUEUED,
            RunState.INTERRUPTED,
        }
    ),
    RunState.INTERRUPTED: frozenset({RunState.QUEUED, RunState.FAILED, RunState.CANCELLED}),
    RunState.COMPLETED: frozenset(),
    RunState.FAILED: frozenset(),
    RunState.CANCELLED: frozenset(),
    RunState.TIMED_OUT: frozenset(),
}


def can_transition(current: RunState, target: RunState) -> bool:
    """True when ``current -> target`` is allowed by the table above."""
    return target in ALLOWED_TRANSITIONS[current]


ENDED_IN_WORDS: dict[RunState, str] = {
    RunState.FAILED: "failed",
    RunState.CANCELLED: "was cancelled",
    RunState.TIMED_OUT: "timed out",
}
"""How a run that did not complete is named in the error of a run that waited for it
(``dependency X failed: ...``); the engine and the Redis store's scripts word it alike."""

GONE_IN_WORDS = "was pruned before it could be checked"
"""The same, for a dependency whose record is gone."""
