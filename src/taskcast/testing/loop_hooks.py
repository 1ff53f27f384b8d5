"""Reach the event loops a test runs, whoever created them.

pytest-asyncio makes its loop in a fixture, ``asyncio.run`` makes one inside
the test, a library may make its own. Rather than ask for the loop, a
:class:`LoopHook` is handed every loop that runs an iteration in the thread
that activated it, once, before that iteration: that is the point where the
virtual clock, the schedule explorer and the hang watchdog attach.

The class attribute ``BaseEventLoop._run_once`` is wrapped only while at least
one hook is active, so tests that use none of these features pay nothing.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import threading
import weakref
from collections.abc import Callable
from typing import Any

_BaseEventLoop = asyncio.base_events.BaseEventLoop

_active: list[LoopHook] = []
_original_run_once: Callable[[Any], None] | None = None


class LoopHook:
    """Call *attach(loop)* for each loop that runs in this thread while active.

    *detach(loop)* is called for each attached loop, still alive, when the
    hook is deactivated. Activation is per thread: loops running in other
    threads (a server started by a fixture) are left alone.
    """

    def __init__(
        self,
        attach: Callable[[asyncio.AbstractEventLoop], None],
        detach: Callable[[asyncio.AbstractEventLoop], None],
    ) -> None:
        self._attach = attach
        self._detach = detach
        self._thread = 0
        self.loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    @property
    def active(self) -> bool:
        """True between :meth:`activate` and :meth:`deactivate`."""
        return self in _active

    def activate(self) -> None:
        """Start attaching to loops that run in the calling thread."""
        global _original_run_once
        if self.active:
            raise RuntimeError("this loop hook is already active")
        self._thread = threading.get_ident()
        if _original_run_once is None:
            _original_run_once = _BaseEventLoop._run_once  # type: ignore[attr-defined]
            _BaseEventLoop._run_once = _run_once  # type: ignore[attr-defined]
        _active.append(self)

    def deactivate(self) -> None:
        """Detach from every loop and stop attaching; idempotent."""
        global _original_run_once
        if not self.active:
            return
        _active.remove(self)
        if not _active and _original_run_once is not None:
            _BaseEventLoop._run_once = _original_run_once  # type: ignore[attr-defined]
            _original_run_once = None
        for loop in list(self.loops):
            self._detach(loop)
        self.loops = weakref.WeakSet()

    def attach_now(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to *loop* at once (for a loop already running this hook's code)."""
        if loop not in self.loops:
            self.loops.add(loop)
            self._attach(loop)


def _run_once(loop: Any) -> None:
    thread = threading.get_ident()
    for hook in tuple(_active):
        if hook._thread == thread and loop not in hook.loops:
            hook.attach_now(loop)
    assert _original_run_once is not None
    _original_run_once(loop)


# -- tasks that refused to stop ---------------------------------------------------

#: Event loops whose tasks refused to stop (the hang watchdog gave up on them):
#: closing them must not wait for those tasks again, or the runner would hang.
abandoned_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

#: Tasks that ignored cancellation, kept alive until the process ends (see keep_alive).
kept_alive: list[asyncio.Task[Any]] = []


def keep_alive(task: asyncio.Task[Any]) -> None:
    """Never let *task* be freed, not even when the interpreter shuts down.

    Freeing a suspended coroutine closes it: ``GeneratorExit`` is thrown into it,
    and a coroutine that swallows cancellation (``except BaseException: pass``
    in a loop) swallows that too and spins forever on its closed event loop, so
    the process never exits. One reference that is never released (not even by
    module teardown at exit) keeps it suspended instead.
    """
    if any(kept is task for kept in kept_alive):
        return
    import ctypes

    kept_alive.append(task)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(task))


def abandon(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    """Give up on *loop*'s pending tasks: keep them alive, and let the loop close without them.

    Returns the tasks given up on. Call it from the loop's thread, then stop the loop.
    """
    _patch_cancel_all_tasks()
    abandoned_loops.add(loop)
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        keep_alive(task)
    return pending


def _patch_cancel_all_tasks() -> None:
    import asyncio.runners

    runners: Any = asyncio.runners
    previous = runners._cancel_all_tasks
    if getattr(previous, "_taskcast_skips_abandoned", False):
        return

    def cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
        # asyncio.Runner.close() would cancel them and run the loop until they
        # finish: they never do. They were cancelled once and are kept alive.
        if loop in abandoned_loops:
            for task in asyncio.all_tasks(loop):
                if not task.done():
                    keep_alive(task)
            return
        previous(loop)

    cancel_all_tasks._taskcast_skips_abandoned = True  # type: ignore[attr-defined]
    runners._cancel_all_tasks = cancel_all_tasks
