"""Executor jobs: who submitted each thread-pool job, from where, and whether it still runs.

``loop.run_in_executor``, ``asyncio.to_thread`` and aiofiles all end in
``ThreadPoolExecutor.submit``. While :func:`install` is in effect, a job
submitted by a thread that someone watches (see *owners* below) is recorded as
a :class:`Job`: what it runs, its creation site (the user's line that awaited
it) and its owners. Recorded jobs are forgotten as soon as they finish, so the
registry holds only the jobs still queued or running.

Inside the worker thread, for the duration of the job, :func:`current` returns
the job (what the job creates belongs to its owners: a file aiofiles opens, a
task an event loop in that thread starts), and coroutines created there carry
their origin, as they do in the test's own thread.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.thread
import functools
import socket
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from . import sites
from .sites import Frame, Site

#: Functions the event loop itself sends to its executor (name resolution): the
#: loop's business, not the test's, even when a test's connect started them.
LOOP_INTERNAL_FUNCTIONS: frozenset[object] = frozenset({socket.getaddrinfo, socket.getnameinfo})


@dataclass(eq=False)
class Job:
    """One job handed to a thread pool while its submitter was watched.

    *owners* are whatever the installer's *owners* callable returned (the leak
    windows of the submitting test); *site* is where it was submitted, innermost
    frame first; *thread* is the ident of the worker running it, 0 until it starts.
    """

    function: str
    site: Site
    owners: list[Any]
    executor: weakref.ref[Executor]
    internal: bool = False
    thread: int = 0
    future: Future[Any] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        """True until the job has finished (or was cancelled before it started)."""
        return self.future is not None and not self.future.done()

    def where_now(self, limit: int = 3) -> list[Frame]:
        """Where the job's thread is now, innermost first, at most *limit* frames.

        The job's user frames if it has any; else its innermost frames (a
        library call such as ``Queue.get``). Empty if it is not running.
        """
        frame = sys._current_frames().get(self.thread) if self.thread and self.running else None
        frames: list[Frame] = []
        while frame is not None and frame.f_code is not _run.__code__:
            frames.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
            frame = frame.f_back
        user = [f for f in frames if not sites.is_library_file(f[0])]
        return (user or frames)[:limit]


_jobs: dict[int, Job] = {}
_current = threading.local()
_original_submit: Callable[..., Future[Any]] | None = None
_owners: Callable[[], list[Any]] = list


def _ignore_result(job: Job, result: object) -> None:
    return None


_on_result: Callable[[Job, object], None] = _ignore_result


def install(owners: Callable[[], list[Any]], on_result: Callable[[Job, object], None]) -> None:
    """Start recording jobs; idempotent until :func:`uninstall`.

    *owners()* is called in the submitting thread and returns who answers for a
    job submitted there (an empty list: nobody, the job is not recorded).
    *on_result(job, result)* is called in the worker with what the job returned
    (a file aiofiles opened), before the submitter sees it.
    """
    global _original_submit, _owners, _on_result
    _owners, _on_result = owners, on_result
    if _original_submit is None:
        _original_submit = concurrent.futures.ThreadPoolExecutor.submit
        concurrent.futures.ThreadPoolExecutor.submit = _submit  # type: ignore[method-assign, assignment]


def uninstall() -> None:
    """Stop recording jobs; jobs already recorded stay until they finish."""
    global _original_submit
    if _original_submit is not None:
        concurrent.futures.ThreadPoolExecutor.submit = _original_submit  # type: ignore[method-assign]
        _original_submit = None


def current() -> Job | None:
    """Return the recorded job the calling thread is running, if any."""
    job: Job | None = getattr(_current, "job", None)
    return job


def running(executor: Executor | None = None) -> list[Job]:
    """Return the recorded jobs still queued or running (on *executor*, if given)."""
    return [
        job
        for job in list(_jobs.values())
        if job.running and (executor is None or job.executor() is executor)
    ]


def _describe(fn: Callable[..., Any]) -> tuple[str, object]:
    # asyncio.to_thread sends functools.partial(context.run, func, *args).
    target: Any = fn
    while isinstance(target, functools.partial):
        inner = target.func
        if getattr(inner, "__name__", "") == "run" and target.args:
            target = target.args[0]
        else:
            target = inner
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return (name or repr(target)), target


def _submit(self: concurrent.futures.ThreadPoolExecutor, fn: Any, /, *args: Any, **kw: Any) -> Any:
    assert _original_submit is not None
    owners = _owners()
    if not owners:
        return _original_submit(self, fn, *args, **kw)
    name, target = _describe(fn)
    try:
        internal = target in LOOP_INTERNAL_FUNCTIONS
    except TypeError:  # an unhashable callable
        internal = False
    job = Job(name, sites.capture(skip=1), owners, weakref.ref(self), internal=internal)
    future = _original_submit(self, functools.partial(_run, job, fn), *args, **kw)
    job.future = future
    _jobs[id(future)] = job
    future.add_done_callback(_forget)
    return future


def _forget(future: Future[Any]) -> None:
    _jobs.pop(id(future), None)


def _run(job: Job, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    job.thread = threading.get_ident()
    previous = current()
    _current.job = job
    depth = sys.get_coroutine_origin_tracking_depth()
    # Coroutines made in this worker (an event loop run here, asgiref's
    # async_to_sync) name their creator, as in the test's own thread.
    sys.set_coroutine_origin_tracking_depth(max(depth, sites.depth))
    try:
        result = fn(*args, **kwargs)
        _on_result(job, result)
        return result
    finally:
        sys.set_coroutine_origin_tracking_depth(depth)
        _current.job = previous


def let_exit_without(job: Job) -> bool:
    """Let the interpreter exit without waiting for *job*'s worker thread; True if it could.

    A job the hang watchdog gave up on may never return, and Python joins every
    thread-pool worker at exit, so the process would never end. Its thread is
    dropped from the two joins (``concurrent.futures``' and ``threading``'s),
    and dies with the process, as a daemon thread does. Best effort: it uses
    CPython's private bookkeeping (3.11, 3.12) and returns False where that is
    not there.
    """
    thread = threading._active.get(job.thread)  # type: ignore[attr-defined]
    queues = getattr(concurrent.futures.thread, "_threads_queues", None)
    locks = getattr(threading, "_shutdown_locks", None)
    locks_lock = getattr(threading, "_shutdown_locks_lock", None)
    tstate_lock = getattr(thread, "_tstate_lock", None)
    if thread is None or queues is None or locks is None or locks_lock is None:
        return False
    queues.pop(thread, None)
    with locks_lock:
        locks.discard(tstate_lock)
    return True
