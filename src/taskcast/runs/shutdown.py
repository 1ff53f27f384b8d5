"""Stopping the runs of a process that shuts down, and the report of what became of each.

The order (docs/semantics.md, "Shutdown"): runs already executing get ``grace`` seconds to
finish (children their parents wait for may still start then); the rest are cancelled with the
``shutdown`` reason, so their cleanup runs, and get ``timeout`` more seconds; a body that ignores
even that is persisted ``interrupted`` anyway and reported *stuck*. Runs that never started stay
queued, and their watchers hear ``shutdown``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .active import ActiveRun, Phase, StopKind
from .outcomes import Outcomes


@dataclass
class ShutdownReport:
    """What ``shutdown`` did with each run it found unfinished.

    ``finished``: ended on their own during the grace period. ``interrupted``: cancelled after the
    grace period, cleaned up, persisted as ``interrupted`` (resumed on the next start).
    ``stuck``: ignored cancellation for the whole timeout; persisted as ``interrupted`` anyway.
    ``queued``: never started; they stay queued in the store. ``scheduled``: their start time
    had not come; they stay scheduled (and start at their time, or at once on the next start if
    it passed meanwhile).
    """

    finished: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def unfinished(self) -> list[str]:
        """Every run that did not reach a terminal state."""
        return [*self.interrupted, *self.stuck, *self.queued]

    @property
    def clean(self) -> bool:
        """True when no task ignored cancellation (nothing of ours is left on the loop)."""
        return not self.stuck

    def __str__(self) -> str:
        return (
            f"shutdown in {self.duration:.2f}s: {len(self.finished)} finished during grace,"
            f" {len(self.interrupted)} interrupted, {len(self.stuck)} stuck,"
            f" {len(self.queued)} left queued, {len(self.scheduled)} left scheduled"
        )


def _executing(runs: Iterable[ActiveRun]) -> list[ActiveRun]:
    return [a for a in runs if a.task is not None and not a.task.done()]


async def stop_runs(
    runs: Callable[[], Iterable[ActiveRun]],
    outcomes: Outcomes,
    *,
    watched: Callable[[str], bool] = lambda run_id: False,
    grace: float,
    timeout: float,
    dispatch: Callable[[], None],
    grace_over: Callable[[], None],
) -> ShutdownReport:
    """Stop the process's runs (``runs()``: those it owns now) in the order of the module
    docstring and report on each. ``dispatch`` starts the children queued during the grace
    period; ``grace_over`` is called when it ends (no run starts any more). Scheduled runs get
    a ``shutdown`` event only when ``watched(run_id)``: there may be very many, far ahead."""
    report = ShutdownReport()
    for active in runs():
        active.cancel_timer()  # retry backoffs: what waits stays queued
    running = _executing(runs())
    if running and grace > 0:
        dispatch()  # children already queued may start
        await asyncio.wait([a.task for a in running if a.task], timeout=grace)
    grace_over()
    report.finished = [a.run.id for a in running if a.task and a.task.done()]
    late = _executing(runs())  # with the children started during the grace period
    for active in late:
        if active.stop is None:
            active.stop, active.stop_reason = StopKind.SHUTDOWN, "shutdown"
            if active.phase is Phase.RUNNING:
                assert active.task is not None
                active.task.cancel()
    if late:
        await asyncio.wait([a.task for a in late if a.task], timeout=max(timeout, 0.0))
    for active in late:
        assert active.task is not None
        if active.task.done():
            if active.phase is Phase.WAITING:
                pass  # never started: listed with the queued runs below
            elif active.stop is StopKind.SHUTDOWN:
                report.interrupted.append(active.run.id)
            else:  # a user's cancel got there first: it ended cancelled
                report.finished.append(active.run.id)
        else:
            report.stuck.append(active.run.id)
            await outcomes.stuck_at_shutdown(active)
    waiting = [a for a in runs() if a.phase in (Phase.WAITING, Phase.BLOCKED)]
    report.queued = [a.run.id for a in waiting]
    scheduled = [a for a in runs() if a.phase is Phase.SCHEDULED]
    report.scheduled = [a.run.id for a in scheduled]
    await outcomes.left_queued(waiting + [a for a in scheduled if watched(a.run.id)])
    return report
