"""``Outcomes``: the one writer of a run's lifecycle (its state and the event that says so).

Every transition of a run the engine makes goes through here: ``started``, ``retrying``,
``interrupted``, ``shutdown`` and the terminal events. The store applies each as a
compare-and-set along ``states.ALLOWED_TRANSITIONS``, so the first terminal write is the only
one, whatever races (a cancel as the run completes, a timeout as it fails).

The terminal write is never lost to a cancel: stores hand a write over before their first
suspension, so a ``CancelledError`` can only interrupt the *wait* for the commit, never the
write. A run's task does not even wait for its terminal commit (``durable=False``): the write is
ordered, so nothing sees the run finished before it is committed (``wait``, watchers, dependents
and parents learn of endings from the store's committed events), and the store commits what it
holds before it closes.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from .. import events
from ..errors import RunNotFound
from ..models import CancelAnswer, Event, Run, text
from ..states import RunState
from ..stores.base import Store
from . import clock
from .active import ActiveRun, Phase, StopKind


def error_of(exc: BaseException) -> dict[str, Any]:
    """The ``{"type", "message"}`` a run records for ``exc``."""
    # ``text``: an exception's message may hold anything, and it is stored and listed.
    return {"type": type(exc).__name__, "message": text(str(exc)) or type(exc).__name__}


def error_in(event: Event) -> dict[str, Any] | None:
    """The ``{"type", "message"}`` error a terminal event carries (None for ``completed``)."""
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == RunState.CANCELLED:
        return {"type": "Cancelled", "message": str(data.get("reason", "cancelled"))}
    error = data.get("error")
    return error if isinstance(error, dict) else None


Write = Coroutine[Any, Any, tuple[Run, Event] | None]
"""A store's write, handed over and to be awaited (see ``Store.transition``)."""


class Outcomes:
    """Writes runs' lifecycle events to ``store`` (see the module docstring).

    The methods that make one write return it to await, rather than awaiting it themselves:
    a run's lifecycle costs no coroutine of its own between the engine and the store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    async def due(self, active: ActiveRun) -> Run | None:
        """Record that a ``scheduled`` run's time came: it is ``queued`` now. The run as stored,
        or None if it could not move (cancelled meanwhile). Not durable: a crash before the
        commit leaves it scheduled, and the next start queues it at once."""
        run = active.run
        moved = await self.store.transition(
            run.id,
            RunState.QUEUED,
            events.QUEUED,
            {"task": run.task, "run_at": run.run_at},
            durable=False,
        )
        return None if moved is None else moved[0]

    def started(self, active: ActiveRun, attempt: int, started_at: float) -> Write:
        """Record the start of ``attempt``. The write gives the run as stored, or None if
        someone else finished it meanwhile (it must not run)."""
        run = active.run
        return self.store.transition(
            run.id,
            RunState.RUNNING,
            events.STARTED,
            {
                "attempt": attempt,
                "task": run.task,  # for whoever counts by task without having seen it queued
                "waited": round(started_at - (run.not_before or run.created_at), 6),
            },
            attempt=attempt,
            started_at=started_at,
            not_before=None,
            durable=False,  # a crash before its commit leaves the run queued: it reruns
        )

    def finish(
        self,
        active: ActiveRun,
        state: RunState,
        data: dict[str, Any],
        *,
        durable: bool = False,
        **fields: Any,
    ) -> Write:
        """Write the run's terminal state and event (once; see the module docstring)."""
        active.phase = Phase.DONE
        now = clock.now()
        if active.run.started_at is not None:
            data["duration"] = round(now - active.run.started_at, 6)
        return self.store.transition(
            active.run.id, state, state.value, data, finished_at=now, durable=durable, **fields
        )

    def completed(self, active: ActiveRun, result: Any) -> Write:
        return self.finish(active, RunState.COMPLETED, {"result": result}, result=result)

    def failed(self, active: ActiveRun, exc: BaseException, *, durable: bool = False) -> Write:
        error = error_of(exc)
        return self.finish(active, RunState.FAILED, {"error": error}, error=error, durable=durable)

    def timed_out(self, active: ActiveRun, timeout: float | None) -> Write:
        error = {"type": "TimedOut", "message": f"the run did not finish within {timeout:g} s"}
        return self.finish(
            active, RunState.TIMED_OUT, {"timeout": timeout, "error": error}, error=error
        )

    def dependency_failed(
        self, active: ActiveRun, dependency_id: str, error: dict[str, Any]
    ) -> Write:
        return self.finish(
            active, RunState.FAILED, {"error": error, "dependency": dependency_id}, error=error
        )

    def stopped(self, active: ActiveRun, cleanup_error: BaseException | None) -> Write:
        """Record a run that was stopped on purpose: cancelled, or interrupted by shutdown."""
        data: dict[str, Any] = {"reason": active.stop_reason or "cancelled"}
        if cleanup_error is not None:
            data["cleanup_error"] = error_of(cleanup_error)
        if active.stop is StopKind.CANCEL:
            error = {"type": "Cancelled", "message": data["reason"]}
            return self.finish(active, RunState.CANCELLED, data, error=error)
        # Shutdown, or a cancellation from outside taskcast (the loop is being torn down).
        active.phase = Phase.DONE
        data.update(reason=active.stop_reason or "shutdown", state=RunState.INTERRUPTED.value)
        return self.store.transition(active.run.id, RunState.INTERRUPTED, events.SHUTDOWN, data)

    def abandoned(self, active: ActiveRun) -> Write:
        """Record ``cancelled`` for a body that ignored its cancellation for too long."""
        reason = active.stop_reason
        data = {"reason": reason, "abandoned": True}
        error = {"type": "Cancelled", "message": reason}
        return self.finish(active, RunState.CANCELLED, data, error=error)

    async def stuck_at_shutdown(self, active: ActiveRun) -> None:
        """Persist as ``interrupted`` a run whose body ignored the shutdown's cancellation."""
        active.phase = Phase.DONE
        await self.store.transition(
            active.run.id,
            RunState.INTERRUPTED,
            events.SHUTDOWN,
            {"reason": "shutdown", "state": "interrupted", "stuck": True},
        )

    async def left_queued(self, runs: list[ActiveRun]) -> None:
        """Tell the watchers of runs that never started that the process stops (they stay
        queued, or scheduled, and run on the next start)."""
        for index, active in enumerate(runs):
            state = "scheduled" if active.phase is Phase.SCHEDULED else "queued"
            # One commit for all: batches commit in order, so the last (durable) write's commit
            # covers the others; thousands of queued runs do not cost a commit each.
            await self.store.append(
                active.run.id,
                events.SHUTDOWN,
                {"reason": "shutdown", "state": state},
                f'{{"reason":"shutdown","state":"{state}"}}',
                durable=index == len(runs) - 1,
            )

    async def retrying(self, active: ActiveRun, exc: BaseException, delay: float) -> Run | None:
        """Record a failed attempt to be retried after ``delay`` seconds; the run as stored,
        or None if it could not move (finished meanwhile)."""
        run = active.run
        error = error_of(exc)
        moved = await self.store.transition(
            run.id,
            RunState.QUEUED,
            events.RETRYING,
            {"attempt": run.attempt + 1, "delay": round(delay, 6), "error": error},
            not_before=clock.now() + delay,
            error=error,
        )
        return None if moved is None else moved[0]

    async def cancel_in_store(self, run_id: str, reason: str) -> CancelAnswer:
        """Cancel a run nobody executes (queued, or interrupted) by its stored state alone.

        Accepted if it moved to ``cancelled``; refused for an unknown (not ``found``), running
        or finished run.
        """
        error = {"type": "Cancelled", "message": reason}
        try:
            moved = await self.store.transition(
                run_id,
                RunState.CANCELLED,
                RunState.CANCELLED.value,
                {"reason": reason},
                error=error,
                finished_at=clock.now(),
            )
        except RunNotFound:
            return CancelAnswer(False, found=False)
        return CancelAnswer(moved is not None)

    async def worker_lost(self, run: Run, reason: str) -> Run | None:
        """Record that the process running ``run`` stopped (``interrupted``); the run as
        stored, or None if it had moved on meanwhile."""
        moved = await self.store.transition(
            run.id,
            RunState.INTERRUPTED,
            events.INTERRUPTED,
            {"reason": reason, "state": RunState.INTERRUPTED.value},
        )
        return None if moved is None else moved[0]

    async def recover_interrupted(self, run: Run) -> Run | None:
        """Queue an interrupted run (or one found ``running`` after a crash) again as a new
        attempt, or fail it when no attempt is left. Returns the re-queued run, or None."""
        error = {
            "type": "Interrupted",
            "message": f"the process stopped during attempt {run.attempt} of {run.max_attempts}",
        }
        if run.attempt < run.max_attempts:
            moved = await self.store.transition(
                run.id,
                RunState.QUEUED,
                events.RETRYING,
                {"attempt": run.attempt + 1, "delay": 0.0, "error": error},
                not_before=None,
                error=error,
            )
            return None if moved is None else moved[0]
        error["message"] += " and no attempts are left"
        await self.store.transition(
            run.id,
            RunState.FAILED,
            RunState.FAILED.value,
            {"error": error},
            error=error,
            finished_at=clock.now(),
        )
        return None
