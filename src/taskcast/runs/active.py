"""``ActiveRun``: a run this process owns, from the moment it is queued here until it is done.

Its ``phase`` says what the engine is doing with it (a cancel acts by phase, see
``coordinator``):

    SCHEDULED    ``scheduled``: waiting for its start time (``run_at``), holding nothing
    BLOCKED      queued, waiting for the runs it was submitted ``after``
    WAITING      queued: ready to start, sleeping out a retry backoff, or in the line of a
                 limit (``held``: its rate limit, or its key's concurrency)
    STARTING     its asyncio task exists but has not had its first turn yet
    RUNNING      its asyncio task is executing the body
    RESCHEDULING the attempt failed; its ``retrying`` write is on its way, then WAITING again
    FINISHING    the body is over; the terminal write is on its way
    DONE         nothing left to do; dropped

Phases are this process's bookkeeping; the run's *state* (``states.RunState``) is what the store
holds, and only ``outcomes`` writes it.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Any

from ..models import Run
from ..tasks import TaskDefinition
from .signals import Mailbox


class Phase(Enum):
    SCHEDULED = "scheduled"
    BLOCKED = "blocked"
    WAITING = "waiting"
    STARTING = "starting"
    RUNNING = "running"
    RESCHEDULING = "rescheduling"
    FINISHING = "finishing"
    DONE = "done"


class StopKind(Enum):
    """Why a run is being stopped on purpose: a user's cancel, or the process shutting down."""

    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


class ActiveRun:
    """A run this process owns until it finishes (see the module docstring)."""

    __slots__ = (
        "_mailbox",
        "body_over",
        "children",
        "deadline",
        "deadline_cap",
        "definition",
        "dependency_failures",
        "held",
        "holds_slot",
        "key",
        "lent",
        "order",
        "phase",
        "rank",
        "rate_key",
        "run",
        "stop",
        "stop_reason",
        "task",
        "timer",
        "waiting_for",
        "waits",
    )

    def __init__(self, run: Run, definition: TaskDefinition) -> None:
        self.run = run
        self.definition = definition
        self.phase = Phase.WAITING
        self.holds_slot = False
        # Unfinished children (ids), cancelled when the body exits. The workflow containers
        # are made on first use: most runs never need them, and fewer allocations per run
        # means fewer garbage collections.
        self.children: set[str] | None = None
        self.body_over = False  # the current attempt's body has exited: no more children
        self.waits = 0  # waits for children under way (``Slots.lending``)
        self.lent = False  # the slot is lent while they last
        # The parent's deadline (event loop time): no attempt of this run may outlive it.
        self.deadline_cap: float | None = None
        self.deadline: float | None = None  # of the current attempt (event loop time)
        # Dependencies (``after``) not ended yet, and those that ended without completing.
        self.waiting_for: set[str] | None = None
        self.dependency_failures: list[tuple[str, dict[str, Any]]] | None = None
        self.order = 0
        self.rank = 0.0  # ``policies.rank``: where it stands among ready runs (smallest first)
        # The values of its task's ``concurrency_key`` and ``rate_key`` arguments (as JSON).
        self.key: str | None = definition.concurrency_key_of(run.args)
        self.rate_key: str | None = definition.rate_key_of(run.args)
        self.held: str | None = None  # the limit whose line it waits in (``waiting_reason``)
        self.task: asyncio.Task[None] | None = None
        # A retry backoff while WAITING; the cancel watchdog while RUNNING.
        self.timer: asyncio.TimerHandle | None = None
        self.stop: StopKind | None = None
        self.stop_reason = ""
        self._mailbox: Mailbox | None = None

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def mailbox(self) -> Mailbox:
        """The run's signals (made on first use: most runs never get one)."""
        mailbox = self._mailbox
        if mailbox is None:
            mailbox = self._mailbox = Mailbox()
        return mailbox

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    @property
    def waiting_reason(self) -> str | None:
        """Why this queued run does not start yet, if a limit holds it (``Run.waiting_for``)."""
        if self.phase is Phase.BLOCKED:
            return "dependencies"
        return self.held if self.phase is Phase.WAITING else None

    @property
    def can_take_signals(self) -> bool:
        """True until its body is over: a signal sent later would never be received."""
        return self.phase not in (Phase.FINISHING, Phase.DONE)
