"""The life of a ``serve`` or ``worker`` process: a stop that stays bounded, and leaving.

Both commands stop on the first SIGTERM/SIGINT (draining: docs/semantics.md, "Shutdown") and
exit at once on the second (128 + the signal number). Once the first arrives, a daemon timer
bounds the whole stop (``exit_if_not_done_in``); runs whose tasks ignore cancellation are left
behind rather than waited for (``leave_now``).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import importlib.metadata
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, NoReturn, TypeVar

STOP_MARGIN = 3.0
"""Seconds past grace + shutdown timeout (+ the server's linger) after which a stop that has not
finished is ended by force (status 70): the bound on the stop time holds even if something
hangs."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_if_not_done_in(seconds: float) -> threading.Timer:
    """Start a daemon timer that ends the process (status 70) in ``seconds``, printing every
    thread's stack first: a stop must stay bounded even if something hangs that should not,
    and the stacks say what."""

    def overdue() -> None:
        sys.stderr.write(f"taskcast: the stop took over {seconds:g}s; exiting by force. Stacks:\n")
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(70)

    timer = threading.Timer(seconds, overdue)
    timer.daemon = True
    timer.start()
    return timer


@contextlib.contextmanager
def stop_signals(on_first: Callable[[int], None], name: str = "taskcast") -> Iterator[None]:
    """Call ``on_first(signum)`` for the first SIGINT/SIGTERM while the block runs (on the
    running loop); exit at once with 128 + the signal number on the second."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handle(signum: int) -> None:
        if received:
            # The operator insists: no more waiting, no cleanup.
            sys.stderr.write(f"{name}: second signal ({signal.Signals(signum).name}), exiting\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        received.append(signum)
        on_first(signum)

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, handle, signum)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def leave_now(*cleanups: Callable[[], None]) -> NoReturn:
    """Exit 0 now, after ``cleanups``, without waiting for tasks that ignore cancellation (their
    runs are stored as interrupted and were logged): ``asyncio.run`` would wait for ever."""
    for cleanup in cleanups:
        with contextlib.suppress(Exception):
            cleanup()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


_T = TypeVar("_T")


def run_on_loop(main: Coroutine[Any, Any, _T], loop: str) -> _T:
    """``asyncio.run(main)``, on a new loop of the kind ``--loop`` names."""
    if loop == "uvloop":
        import uvloop

        logging.getLogger("taskcast").info(
            "event loop: uvloop %s", importlib.metadata.version("uvloop")
        )
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
