"""Virtual time: sleeps and timeouts that take no wall-clock time.

Under :class:`VirtualTime`, each event loop running in the test's thread gets a
fake clock (``loop.time()``). When the loop has nothing to do, the clock jumps
to the next timer instead of waiting for it, so ``asyncio.sleep``,
``asyncio.timeout``, ``asyncio.wait_for`` and ``loop.call_later`` all finish at
once, in the same order as in real time.

The clock never jumps past work happening outside the loop:

* while a job sent to an executor (``run_in_executor``, ``asyncio.to_thread``,
  ``getaddrinfo``) is running, the loop waits for it in real time;
* while input may still arrive from outside the loop (see :mod:`.pending_io`:
  a connection to another process or thread the loop wrote to, a connect
  under way, a subprocess's pipe), the loop first waits up to *io_idle* real
  seconds for it, so a reply already on its way arrives before a timeout
  fires. Listening sockets, connections between two sockets of the same loop
  and connections that went quiet cost nothing: with a server in the test and
  a periodic timer, virtual time runs as fast as the callbacks.

``time.time()``, ``time.monotonic()`` and threads' own sleeps stay real.
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import pending_io
from .loop_hooks import LoopHook
from .pending_io import PendingIo

#: Real seconds the loop waits for socket I/O before jumping the clock.
DEFAULT_IO_IDLE = 0.02

#: Real seconds to block at most in one wait for an executor job or I/O, so
#: the loop re-checks its state (a hook may have been added) now and then.
_REAL_WAIT_CAP = 1.0


class LoopClock:
    """The fake clock of one event loop. Created by :class:`VirtualTime`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, io_idle: float) -> None:
        self.loop = loop
        self.io_idle = io_idle
        self.now = loop.time()
        self.jumped = 0.0
        #: Times the loop waited the whole io_idle for input that did not come:
        #: the real time virtual time cost is about idle_waits * io_idle.
        self.idle_waits = 0
        self.executor_jobs = 0
        #: Called when nothing can ever happen again: no ready callback, no
        #: timer, no executor job, no socket. The hang watchdog sets it.
        self.on_deadlock: Callable[[], None] | None = None
        self._selector: selectors.BaseSelector = loop._selector  # type: ignore[attr-defined]
        self._real_select: Callable[[float | None], list[Any]] = self._selector.select
        self._real_run_in_executor = loop.run_in_executor
        self.pending_io: PendingIo | None = None

    def time(self) -> float:
        """Return the loop's virtual time."""
        return self.now

    def install(self) -> None:
        """Replace the loop's clock, selector wait and executor submission."""
        loop: Any = self.loop
        loop.time = self.time
        loop.run_in_executor = self._run_in_executor
        self._selector.select = self._select  # type: ignore[method-assign]
        self.pending_io = pending_io.watch(self.loop)

    def uninstall(self) -> None:
        """Give the loop its real clock back."""
        loop: Any = self.loop
        for name in ("time", "run_in_executor"):
            loop.__dict__.pop(name, None)
        self._selector.__dict__.pop("select", None)
        pending_io.unwatch(self.loop)
        self.pending_io = None

    def _run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        future = self._real_run_in_executor(executor, func, *args)
        self.executor_jobs += 1
        future.add_done_callback(self._executor_job_done)
        return future

    def _executor_job_done(self, _: object) -> None:
        self.executor_jobs -= 1

    def _select(self, timeout: float | None = None) -> list[Any]:
        events = self._real_select(0)
        if events or (timeout is not None and timeout <= 0):
            return events
        if self.executor_jobs:
            # A thread is working for us; its result arrives through the
            # loop's self-pipe. Waiting for it in real time keeps the clock
            # from jumping past it.
            return self._real_select(_REAL_WAIT_CAP)
        if self.pending_io is not None and self.pending_io.expected():
            events = self._real_select(self.io_idle)
            if events:
                return events
            self.idle_waits += 1
            self.pending_io.went_quiet()
        scheduled: list[asyncio.TimerHandle] = self.loop._scheduled  # type: ignore[attr-defined]
        if scheduled:
            when = scheduled[0].when()
            if when > self.now and math.isfinite(when):
                self.jumped += when - self.now
                self.now = when
            return []
        if getattr(self.loop, "_executor_shutdown_called", False):
            # asyncio.Runner.close() waits for the default executor's threads to join; a plain
            # thread (not an executor job) wakes it. That is teardown, not a deadlock.
            return self._real_select(_REAL_WAIT_CAP)
        if len(self._selector.get_map()) <= 1 and self.on_deadlock is not None:
            self.on_deadlock()
            return self._real_select(0)
        return self._real_select(_REAL_WAIT_CAP if timeout is None else timeout)


class VirtualTime:
    """Run every event loop of this thread on a fake clock while active.

    Use it as a context manager around ``asyncio.run(...)``, or through the
    ``virtual_time`` marker or fixture in pytest. *io_idle* is how many real
    seconds a loop waits for input that may be on its way (see
    :mod:`.pending_io`) before jumping its clock; raise it for peers slower
    than that (it costs nothing while no such input is expected).

    Raises ValueError if *io_idle* is negative or not finite.
    """

    def __init__(self, io_idle: float = DEFAULT_IO_IDLE) -> None:
        if not (math.isfinite(io_idle) and io_idle >= 0):
            raise ValueError(f"io_idle must be a finite number >= 0, got {io_idle!r}")
        self.io_idle = io_idle
        self.clocks: dict[asyncio.AbstractEventLoop, LoopClock] = {}
        self._hook = LoopHook(self._attach, self._detach)
        self._total_jumped = 0.0
        self._total_idle_waits = 0

    @property
    def jumped(self) -> float:
        """Virtual seconds skipped so far, summed over every loop."""
        return self._total_jumped + sum(clock.jumped for clock in self.clocks.values())

    @property
    def idle_waits(self) -> int:
        """Times a loop waited the whole *io_idle* for input that did not come, over every loop."""
        return self._total_idle_waits + sum(clock.idle_waits for clock in self.clocks.values())

    def start(self) -> None:
        """Start faking time for loops of the calling thread (running or not)."""
        self._hook.activate()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._hook.attach_now(running)

    def stop(self) -> None:
        """Give every loop its real clock back; idempotent.

        A loop that outlives this (a session-wide loop) has timers set in
        virtual time, which may now lie in the far future.
        """
        self._hook.deactivate()

    def clock_of(self, loop: asyncio.AbstractEventLoop) -> LoopClock | None:
        """Return the fake clock of *loop*, or None if it is not virtualised."""
        return self.clocks.get(loop)

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if not hasattr(loop, "_selector") or not hasattr(loop, "_scheduled"):
            return  # not a selector loop (uvloop, proactor): leave it real
        clock = LoopClock(loop, self.io_idle)
        clock.install()
        self.clocks[loop] = clock

    def _detach(self, loop: asyncio.AbstractEventLoop) -> None:
        clock = self.clocks.pop(loop, None)
        if clock is not None:
            self._total_jumped += clock.jumped
            self._total_idle_waits += clock.idle_waits
            clock.uninstall()

    def __enter__(self) -> VirtualTime:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def virtual_time(io_idle: float = DEFAULT_IO_IDLE) -> VirtualTime:
    """Return a :class:`VirtualTime`; use it as ``with virtual_time(): asyncio.run(main())``."""
    return VirtualTime(io_idle=io_idle)
