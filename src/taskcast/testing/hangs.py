"""Hang reports: cancel a hung test cooperatively and say what every task awaited.

A :class:`HangWatchdog` watches the loops of the test's thread. When the test
runs longer than its budget (real seconds), or, under virtual time, when
nothing can ever happen again (no ready callback, timer, executor job or
socket: a deadlock), it:

1. records what every pending task of the loop is awaiting;
2. cancels those tasks, so ``finally`` blocks run and the test ends;
3. if the test still runs after *grace* real seconds (a task swallows
   cancellation), stops the loop; the runner then closes it without waiting
   for those tasks again, and they are kept alive until the process ends
   (closing them at garbage collection would throw ``GeneratorExit`` into a
   coroutine that swallows it and spins: the process would never exit).

The budget is real time even under virtual time: a virtual hour is fine, a
real minute of spinning is not. A loop blocked by synchronous code cannot be
interrupted cooperatively; pytest-timeout is the backstop for that.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

from . import jobs, loop_hooks
from .awaits import describe_tasks
from .clock import VirtualTime
from .loop_hooks import LoopHook
from .sites import format_frame, format_site


class HangWatchdog:
    """Cancel the test's tasks after *seconds* of real time and keep the report.

    Raises ValueError if *seconds* or *grace* is not a positive finite number.
    """

    def __init__(
        self, seconds: float, *, grace: float = 1.0, virtual: VirtualTime | None = None
    ) -> None:
        for label, value in (("seconds", seconds), ("grace", grace)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a finite number > 0, got {value!r}")
        self.seconds = seconds
        self.grace = grace
        self.report: str | None = None
        self._virtual = virtual
        self._hook = LoopHook(self._attach, self._detach)
        self._timers: list[threading.Timer] = []
        self._started = 0.0

    @property
    def fired(self) -> bool:
        """True once the watchdog declared the test hung."""
        return self.report is not None

    def start(self) -> None:
        """Start the budget now, for the loops of the calling thread."""
        self._started = time.monotonic()
        self._hook.activate()
        self._after(self.seconds, self._on_budget_spent)

    def stop(self) -> None:
        """Stop watching; idempotent."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._hook.deactivate()

    def _after(self, seconds: float, action: Any) -> None:
        # A thread, not loop.call_later: it must fire in real time even when
        # the loop runs on a virtual clock.
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        clock = self._virtual.clock_of(loop) if self._virtual else None
        if clock is not None:
            clock.on_deadlock = lambda: self._fire(loop, "deadlock: nothing can ever wake it")

    def _detach(self, loop: asyncio.AbstractEventLoop) -> None:
        clock = self._virtual.clock_of(loop) if self._virtual else None
        if clock is not None:
            clock.on_deadlock = None

    def _on_budget_spent(self) -> None:
        for loop in list(self._hook.loops):
            if loop.is_running() and not loop.is_closed():
                why = f"still running after {self.seconds:g}s"
                loop.call_soon_threadsafe(self._fire, loop, why)

    def _fire(self, loop: asyncio.AbstractEventLoop, why: str) -> None:
        if self.fired:
            return
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        elapsed = time.monotonic() - self._started
        self.report = (
            f"taskcast hang: the test hung ({why}; {elapsed:.2f}s real time). "
            f"{len(pending)} task(s) were awaiting:\n{describe_tasks(pending)}\n"
            "They were cancelled so their cleanup could run."
        )
        stuck = [job for job in jobs.running() if not job.internal]
        if stuck:
            # A thread cannot be cancelled: name it, and do not let it hold the process at exit.
            self.report += (
                f"\n{len(stuck)} executor job(s) were still running (a thread cannot be "
                "cancelled; the process will not wait for them at exit):\n"
                + "\n".join(_describe_job(job) for job in stuck)
            )
            for job in stuck:
                jobs.let_exit_without(job)
        for task in pending:
            task.cancel()
        self._after(self.grace, lambda: self._abandon(loop))

    def _abandon(self, loop: asyncio.AbstractEventLoop) -> None:
        if not loop.is_closed() and loop.is_running():
            loop.call_soon_threadsafe(self._give_up, loop)

    def _give_up(self, loop: asyncio.AbstractEventLoop) -> None:
        stubborn = loop_hooks.abandon(loop)
        if self.report is not None:
            self.report += (
                f"\nSome tasks ignored cancellation for {self.grace:g}s; the loop was stopped. "
                "These are kept alive, never closed, so the process can exit:\n"
                + describe_tasks(stubborn)
            )
        loop.stop()


def _describe_job(job: jobs.Job) -> str:
    lines = [f"  executor job {job.function}(), submitted at:", format_site(job.site, limit=2)]
    now = job.where_now()
    if now:
        lines.append("    it is now at:")
        lines.extend(f"      {format_frame(frame)}" for frame in now)
    return "\n".join(lines)
