"""The leak guard: what a test left behind, blamed on that test, with creation sites.

A :class:`LeakWindow` watches one test from the start of its setup to the end of
its teardown. Anything the test's thread created in that window and did not
clean up is a leak:

* a task still pending when its event loop closed (``asyncio.Runner`` would
  cancel it silently), or still pending at the end of the test;
* a coroutine that was never awaited (Python only warns, at garbage
  collection, often after the test has passed);
* an async generator still suspended when its loop shut down, or one the
  user's code started and then dropped without ``aclose()``;
* a socket still open at the end of the test, or a socket, file, transport or
  event loop garbage-collected while open (Python's ``ResourceWarning``);
* a subprocess still running at the end of the test;
* an executor job (``run_in_executor``, ``asyncio.to_thread``) still running
  when its event loop closed or at the end of the test.

Objects a test's executor job creates in its worker thread (the file aiofiles
opens, a loop asgiref runs there) are the test's, with the job's creation site.

Objects made while a fixture of wider scope (module, session...) is being set
up are exempt: they belong to that fixture, not to the test that happened to
set it up. So is anything reachable from the value of such a fixture (a
session-wide client's connection pool).

The instrumentation is process-wide and installed once (:func:`install`); it
costs nothing while no window is open. Windows nest, as they do when pytest's
``pytester`` runs a session inside a test: a leak reported by the inner window
is not reported again by the outer one.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.runners
import asyncio.tasks
import gc
import io
import os
import select
import socket
import subprocess
import sys
import threading
import time
import types
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from . import jobs, loop_hooks, sites
from .awaits import await_chain
from .sites import Site, format_frame, format_site

_ALL_TASKS: weakref.WeakSet[asyncio.Task[Any]] = asyncio.tasks._all_tasks  # type: ignore[attr-defined]


@dataclass(eq=False)
class Leak:
    """One thing a test left behind.

    *kind* is a short noun (``task``, ``coroutine``, ``async generator``,
    ``socket``, ``server``, ``file``, ``subprocess``, ``executor job``,
    ``resource``...); *summary* says what is wrong; *site* is where the object
    was created, innermost frame first.
    """

    kind: str
    summary: str
    site: Site = ()
    detail: str = ""
    claimed: bool = False
    obj_ref: weakref.ref[Any] | None = field(default=None, repr=False)

    def format(self) -> str:
        """Format the leak for a failure report."""
        parts = [f"- {self.kind}: {self.summary}"]
        if self.detail:
            parts.append(self.detail)
        parts.append("  created at:")
        parts.append(format_site(self.site))
        return "\n".join(parts)


def _gone() -> None:
    """The weak reference of an object that cannot have one (see _register's by_id)."""
    return None


@dataclass(eq=False)
class _Registered:
    """An object created inside one or more windows, with its creation site.

    *kind* is the object's code (async generators) or type (sockets): an id
    can be reused once the object is freed, the pair (id, kind) rarely is.
    """

    ref: Callable[[], Any]
    site: Site
    windows: list[LeakWindow]
    kind: object = None
    claimed: bool = False
    #: The entry this object is part of (a process, for its pipes), if any.
    part_of: _Registered | None = None


@dataclass(eq=False)
class LeakWindow:
    """Watch one test for leaks; open it before setup, close it after teardown.

    *allow_reason* non-empty means the test opted out: leaks are still
    collected (so outer windows do not report them) but not reported.
    """

    name: str
    allow_reason: str = ""
    leaks: list[Leak] = field(default_factory=list)
    file_sites: dict[str, Site] = field(default_factory=dict)
    _thread: int = 0
    _tasks_before: weakref.WeakSet[asyncio.Task[Any]] = field(default_factory=weakref.WeakSet)
    _exempt_depth: int = 0
    _open: bool = False
    _seen: dict[int, Any] = field(default_factory=dict)
    _warning_sink: object = None

    def open(self) -> None:
        """Start watching. Tasks that exist now are never blamed on this test."""
        if self._open:
            raise RuntimeError(f"leak window for {self.name} is already open")
        self._thread = threading.get_ident()
        self._tasks_before = weakref.WeakSet(_ALL_TASKS)
        # ResourceWarning is ignored by default; we need to see it to blame
        # unclosed sockets and files. pytest restores the filters after the test.
        warnings.filterwarnings("always", category=ResourceWarning)
        # Where warnings go now (pytest's own recorder). If the test later
        # records warnings itself (pytest.warns), it expects them: see below.
        self._warning_sink = warnings._showwarnmsg_impl  # type: ignore[attr-defined]
        # Everything alive now belongs to earlier tests or the session. Freezing
        # it keeps the collection at close() to the objects this test made:
        # milliseconds less per test than a full collection of a big heap.
        gc.freeze()
        self._open = True
        _windows.append(self)

    @contextmanager
    def exempt(self) -> Iterator[None]:
        """Within this block, objects created belong to a wider-scoped fixture."""
        before = set(map(id, _ALL_TASKS))
        self._exempt_depth += 1
        try:
            yield
        finally:
            self._exempt_depth -= 1
            for task in list(_ALL_TASKS):
                if id(task) not in before:
                    self._tasks_before.add(task)

    def close(self, keep_alive_roots: Iterable[object] = ()) -> list[Leak]:
        """Stop watching and return the leaks to report (none if the test opted out).

        *keep_alive_roots* are values that legitimately outlive the test (the
        values of wider-scoped fixtures): sockets and tasks reachable from them
        are not leaks.
        """
        try:
            # Finalize garbage now, so never-awaited coroutines, dropped async
            # generators and unclosed resources are blamed on this test, not
            # on whichever later test happens to trigger a collection.
            gc.collect()
            live = (
                self._pending_tasks()
                + self._open_sockets()
                + self._running_processes()
                + self._running_jobs()
            )
            if live:
                reachable = _reachable_from(keep_alive_roots, [obj for obj, _ in live])
                for obj, leak in live:
                    if id(obj) not in reachable:
                        self._add(leak, obj)
        finally:
            gc.unfreeze()
            self._open = False
            if self in _windows:
                _windows.remove(self)
            if not _windows:
                for table in (_sockets, _agens, _processes, _pipes, _returned):
                    _forget_dead(table)
        found = [leak for leak in self.leaks if not leak.claimed]
        for leak in found:
            leak.claimed = True
            obj = leak.obj_ref() if leak.obj_ref is not None else None
            if obj is not None:
                claim(obj)
        return [] if self.allow_reason else found

    @property
    def watching_this_thread(self) -> bool:
        """True if objects created right now, in this thread, count against the test."""
        return self._open and not self._exempt_depth and threading.get_ident() == self._thread

    def is_new_task(self, task: asyncio.Task[Any]) -> bool:
        """True if *task* was created inside this window (and not by a wide fixture)."""
        return task not in self._tasks_before

    def _add(self, leak: Leak, obj: object = None) -> None:
        if obj is not None:
            key = id(obj)
            if _is_claimed(obj):
                return
            # Ids are reused once an object is freed (a second asyncio.run in
            # the same test): the same id is the same object only if it is alive.
            seen = self._seen.get(key)
            if seen is not None and (seen() is obj if callable(seen) else True):
                return
            self._seen[key] = _weak_or_marker(obj)
            if leak.obj_ref is None:
                with suppress(TypeError):
                    leak.obj_ref = weakref.ref(obj)
        self.leaks.append(leak)

    def _pending_tasks(self) -> list[tuple[object, Leak]]:
        found: list[tuple[object, Leak]] = []
        for task in list(_ALL_TASKS):
            if task.done() or not self.is_new_task(task):
                continue
            if any(kept is task for kept in loop_hooks.kept_alive):
                continue  # the hang report named it already
            if not is_users_task(task):
                continue
            # A loop still running belongs to another thread (a server started
            # by a fixture); its owner stops it, and its tasks, later.
            if task.get_loop().is_running():
                continue
            if self._serves_someone_elses_server(task):
                continue
            found.append((task, _task_leak(task, "still pending at the end of the test")))
        return found

    def _serves_someone_elses_server(self, task: asyncio.Task[Any]) -> bool:
        """True if *task* handles a connection accepted by a server this test did not make.

        ``asyncio.start_server`` starts one handler task per connection, from the
        loop, with no user frame on the stack. A pooled connection to a session
        fixture's server keeps its handler waiting after the test: the fixture's.
        """
        origin = getattr(task.get_coro(), "cr_origin", None) or ()
        if sites.first_user_frame(tuple(origin)) is not None:
            return False  # user code started it: the general rule applies
        for holder in gc.get_referrers(task):
            if not isinstance(holder, asyncio.StreamReaderProtocol):
                continue
            server = getattr(getattr(holder, "_transport", None), "_server", None)
            listeners = getattr(server, "_sockets", None) or ()
            return bool(listeners) and not any(
                (entry := _sockets.get(id(listener))) is not None
                and entry.ref() is listener
                and any(window is self for window in entry.windows)
                for listener in listeners
            )
        return False

    def _open_sockets(self) -> list[tuple[object, Leak]]:
        found: list[tuple[object, Leak]] = []
        for entry in list(_sockets.values()):
            sock = entry.ref()
            if sock is None or not any(window is self for window in entry.windows):
                continue
            try:
                fileno = sock.fileno()
            except OSError:
                continue
            if fileno == -1:
                continue
            if _is_listening(sock):
                summary = (
                    f"listening socket {_short_repr(sock)} is still open at the end of the "
                    "test: a server was not closed (server.close(); await server.wait_closed())"
                )
                found.append((sock, Leak("server", summary, entry.site)))
                continue
            summary = f"{_short_repr(sock)} is still open at the end of the test"
            found.append((sock, Leak("socket", summary, entry.site)))
        return found

    def _running_processes(self) -> list[tuple[object, Leak]]:
        found: list[tuple[object, Leak]] = []
        mine = [
            (proc, entry)
            for entry in list(_processes.values())
            if (proc := entry.ref()) is not None and any(window is self for window in entry.windows)
        ]
        if not mine:
            return found
        for proc, entry in mine:
            _register_pipes(proc, entry)
        # A process the test has just killed takes a moment to die: wait for
        # that, a few milliseconds at most, only when one is still running.
        alive = [pair for pair in mine if _still_running(pair[0])]
        if alive:
            _wait_for_exits([proc for proc, _ in alive], _DYING_GRACE)
            alive = [pair for pair in alive if _still_running(pair[0])]
        for proc, entry in alive:
            summary = (
                f"process {proc.pid} {_short_repr(proc.args, 80)} is still running at the end "
                "of the test (terminate or kill it, then await proc.wait())"
            )
            found.append((proc, Leak("subprocess", summary, entry.site)))
        return found

    def _running_jobs(self) -> list[tuple[object, Leak]]:
        return [
            (job, _job_leak(job, "still running at the end of the test"))
            for job in jobs.running()
            if not job.internal and any(window is self for window in job.owners)
        ]


# -- process-wide instrumentation ------------------------------------------------

_windows: list[LeakWindow] = []
_sockets: dict[int, _Registered] = {}
_agens: dict[int, _Registered] = {}
_processes: dict[int, _Registered] = {}
_pipes: dict[int, _Registered] = {}
_returned: dict[int, _Registered] = {}
_claimed: dict[int, weakref.ref[Any] | None] = {}

#: Real seconds to let a process the test just killed die before calling it a leak.
_DYING_GRACE = 0.05
_install_count = 0
_originals: dict[str, Any] = {}
_audit_hook_added = False


def install(origin_depth: int = sites.DEFAULT_DEPTH) -> None:
    """Install the process-wide probes; idempotent, counted, undone by :func:`uninstall`.

    Sets coroutine origin tracking on the calling thread to *origin_depth*
    frames, so leaked tasks and never-awaited coroutines name their creator.
    """
    global _install_count, _audit_hook_added
    _install_count += 1
    if _install_count > 1:
        return
    if not _audit_hook_added:
        # Audit hooks cannot be removed; ours returns at once when no window is open.
        sys.addaudithook(_audit)
        _audit_hook_added = True
    base = asyncio.base_events.BaseEventLoop
    _originals.update(
        warn_unawaited=warnings._warn_unawaited_coroutine,  # type: ignore[attr-defined]
        showwarnmsg=warnings._showwarnmsg,  # type: ignore[attr-defined]
        cancel_all_tasks=asyncio.runners._cancel_all_tasks,  # type: ignore[attr-defined]
        firstiter=base._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
        finalizer=base._asyncgen_finalizer_hook,  # type: ignore[attr-defined]
        shutdown_asyncgens=base.shutdown_asyncgens,
        shutdown_default_executor=base.shutdown_default_executor,
        origin_depth=sys.get_coroutine_origin_tracking_depth(),
        thread_profile=threading.getprofile(),
    )
    # The interpreter looks these up on the warnings module at each use, so
    # replacing the attribute is enough to see every unawaited coroutine and
    # every warning with its source object.
    warnings._warn_unawaited_coroutine = _on_unawaited_coroutine  # type: ignore[attr-defined]
    warnings._showwarnmsg = _on_warning  # type: ignore[attr-defined]
    # Runner.close() looks this up as a module global: we see the tasks it is
    # about to cancel silently.
    asyncio.runners._cancel_all_tasks = _on_cancel_all_tasks  # type: ignore[attr-defined]
    base._asyncgen_firstiter_hook = _on_asyncgen_firstiter  # type: ignore[attr-defined]
    base._asyncgen_finalizer_hook = _on_asyncgen_finalizer  # type: ignore[attr-defined]
    base.shutdown_asyncgens = _on_shutdown_asyncgens  # type: ignore[method-assign]
    base.shutdown_default_executor = _on_shutdown_default_executor  # type: ignore[method-assign]
    sys.set_coroutine_origin_tracking_depth(max(origin_depth, _originals["origin_depth"]))
    sites.depth = max(origin_depth, 1)
    jobs.install(owners=_owners_here, on_result=_on_job_result)
    # Origin tracking is per thread: threads started from now on (a loop run in
    # a thread, a server thread) turn it on at their first call.
    threading.setprofile(_track_origins_then_step_aside)


def uninstall() -> None:
    """Undo one :func:`install`; the last one restores everything."""
    global _install_count
    if _install_count == 0:
        return
    _install_count -= 1
    if _install_count:
        return
    base = asyncio.base_events.BaseEventLoop
    warnings._warn_unawaited_coroutine = _originals["warn_unawaited"]  # type: ignore[attr-defined]
    warnings._showwarnmsg = _originals["showwarnmsg"]  # type: ignore[attr-defined]
    asyncio.runners._cancel_all_tasks = _originals["cancel_all_tasks"]  # type: ignore[attr-defined]
    base._asyncgen_firstiter_hook = _originals["firstiter"]  # type: ignore[attr-defined]
    base._asyncgen_finalizer_hook = _originals["finalizer"]  # type: ignore[attr-defined]
    base.shutdown_asyncgens = _originals["shutdown_asyncgens"]  # type: ignore[method-assign]
    base.shutdown_default_executor = _originals["shutdown_default_executor"]  # type: ignore[method-assign]
    sys.set_coroutine_origin_tracking_depth(_originals["origin_depth"])
    jobs.uninstall()
    if threading.getprofile() is _track_origins_then_step_aside:
        threading.setprofile(_originals["thread_profile"])
    _originals.clear()


def claim(obj: object) -> None:
    """Mark *obj* as already dealt with, so no window reports it again."""
    for table in (_sockets, _agens, _processes, _returned):
        entry = table.get(id(obj))
        if entry is not None and entry.ref() is obj:
            # Survives the object's weak references, which are cleared before
            # its finalizer warns.
            entry.claimed = True
    key = id(obj)

    def forget(_: weakref.ref[Any]) -> None:
        _claimed.pop(key, None)

    try:
        _claimed[key] = weakref.ref(obj, forget)
    except TypeError:
        _claimed[key] = None


def _watching() -> list[LeakWindow]:
    return [window for window in _windows if window.watching_this_thread]


def _owners_here() -> list[LeakWindow]:
    """The windows that answer for an object created now, in this thread.

    The test's own thread is watched by its window; a worker thread running a
    job the test submitted (``asyncio.to_thread``, aiofiles) belongs to the
    job's windows while the job runs. Other threads belong to nobody.
    """
    if not _windows:
        return []
    windows = _watching()
    if windows:
        return windows
    job = jobs.current()
    if job is None:
        return []
    return [window for window in job.owners if window._open and not window._exempt_depth]


def _track_origins_then_step_aside(frame: types.FrameType, event: str, arg: object) -> Any:
    """A thread's first profile event: turn on coroutine origins, then restore the profiler."""
    depth = max(sys.get_coroutine_origin_tracking_depth(), sites.depth)
    sys.set_coroutine_origin_tracking_depth(depth)
    previous = _originals.get("thread_profile")
    sys.setprofile(previous)
    return previous(frame, event, arg) if previous is not None else None


def _site_here(skip: int) -> Site:
    """The creation site of an object made now; in a job's worker, the job's site.

    A worker thread's own stack holds only the library that runs the job
    (aiofiles' ``open``); the user's line is where the job was submitted.
    """
    site = sites.capture(skip=skip + 1)
    job = jobs.current()
    if job is not None and sites.first_user_frame(site) is None:
        return job.site
    return site


def _register(
    table: dict[int, _Registered],
    obj: object,
    windows: list[LeakWindow],
    kind: object,
    site: Site | None = None,
    by_id: bool = False,
) -> None:
    """Remember *obj*, made in *windows*, with its creation site.

    An object that cannot be weakly referenced is skipped, unless *by_id*: then
    it is remembered by id and type until the last window closes (an os.scandir
    iterator a job returned), which may name the wrong site if it is freed and
    another of its type takes its address within the test.
    """
    ref: Callable[[], object]
    try:
        ref = weakref.ref(obj)
    except TypeError:  # a raw _socket.socket: cannot follow it, so do not blame it
        if not by_id:
            return
        ref = _gone
    where = _site_here(skip=2) if site is None else site
    table[id(obj)] = _Registered(ref, where, windows, kind)


def _lookup(table: dict[int, _Registered], obj: object, kind: object) -> _Registered | None:
    # Generators clear their weak references *before* their finalizer runs, so
    # a dead reference with the same id and kind is still the same object.
    entry = table.get(id(obj))
    if entry is None or entry.kind is not kind:
        return None
    target = entry.ref()
    return entry if target is None or target is obj else None


def _forget_dead(table: dict[int, _Registered]) -> None:
    for key in [key for key, entry in table.items() if entry.ref() is None]:
        del table[key]


def _is_listening(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except (OSError, AttributeError):
        return False


def _accepted_by_someone_else(windows: list[LeakWindow]) -> bool:
    """True if the socket being made is accepted by a listener these windows did not make.

    The server side of a connection belongs to the server's owner (a session
    fixture's server accepting the test's connection), not to the test.
    """
    frame: types.FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_code.co_name == "accept" and frame.f_code.co_filename == socket.__file__:
            listener = frame.f_locals.get("self")
            entry = _sockets.get(id(listener))
            owned = entry is not None and entry.ref() is listener
            return not (owned and entry is not None and any(w in entry.windows for w in windows))
        frame = frame.f_back
    return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _windows:
        return
    # A resource counts only when user code made it (a user frame in its site):
    # what a library or a plugin makes on its own (looptime's loop in a pytest
    # hook) is theirs, as their own tasks are.
    if event == "socket.__new__":
        windows = _owners_here()
        if windows and not _accepted_by_someone_else(windows):
            site = _site_here(skip=1)
            if sites.first_user_frame(site) is not None:
                _register(_sockets, args[0], windows, type(args[0]), site=site)
    elif event == "open":
        path = args[0]
        if isinstance(path, str | bytes | os.PathLike):
            windows = _owners_here()
            site = _site_here(skip=1) if windows else ()
            if sites.first_user_frame(site) is not None:
                key = os.fsdecode(path)
                for window in windows:
                    window.file_sites[key] = site
    elif event == "subprocess.Popen":
        windows = _owners_here()
        proc = sys._getframe(1).f_locals.get("self")  # Popen._execute_child's
        if windows and isinstance(proc, subprocess.Popen):
            site = _site_here(skip=1)
            if sites.first_user_frame(site) is not None:
                _register(_processes, proc, windows, subprocess.Popen, site=site)


def _on_job_result(job: jobs.Job, result: object) -> None:
    """What a job returned (the file aiofiles opens) is the job's test's, made at the job's site."""
    windows = [window for window in job.owners if window._open]
    if not windows or not callable(getattr(result, "close", None)) or isinstance(result, type):
        return  # only what can be left open (has a close()) can leak
    layers = [result]
    if isinstance(result, io.IOBase):
        # Whichever layer is finalized first warns: the text wrapper, its buffer or the raw file.
        buffer = getattr(result, "buffer", None)
        layers += [buffer, getattr(buffer or result, "raw", None)]
    for layer in layers:
        if layer is not None:
            _register(_returned, layer, windows, type(layer), site=job.site, by_id=True)


def _wait_for_exits(procs: list[subprocess.Popen[Any]], timeout: float) -> None:
    """Wait up to *timeout* seconds for *procs* to exit, without reaping them."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # not Linux 5.3+, or already gone
            continue
        try:
            select.select([pidfd], [], [], remaining)  # readable once the process exits
        finally:
            os.close(pidfd)


def _still_running(proc: subprocess.Popen[Any]) -> bool:
    """True if *proc* has not exited; never reaps it (asyncio's child watcher may be waiting)."""
    if proc.returncode is not None:
        return False
    if not hasattr(os, "waitid"):
        return proc.poll() is None
    try:
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, proc.pid, flags) is None
    except ChildProcessError:
        return False  # already reaped by its watcher


def _weak_or_marker(obj: object) -> Any:
    try:
        return weakref.ref(obj)
    except TypeError:
        return True


def _is_claimed(obj: object) -> bool:
    if id(obj) not in _claimed:
        return False
    ref = _claimed[id(obj)]
    return ref is None or ref() is obj


def _record(leak: Leak, windows: Iterable[LeakWindow], obj: object = None) -> None:
    if obj is not None and _is_claimed(obj):
        return
    for window in windows:
        window._add(leak, obj)


def _on_unawaited_coroutine(coro: Any) -> None:
    windows = [window for window in _windows if window._open]
    if not windows or windows[-1]._warning_sink is not warnings._showwarnmsg_impl:  # type: ignore[attr-defined]
        # No test is watched, or the test is recording warnings itself
        # (pytest.warns(RuntimeWarning) around `del coro`): it expects the
        # warning, so it gets the warning and no leak is blamed.
        _originals["warn_unawaited"](coro)
        return
    origin = getattr(coro, "cr_origin", None) or ()
    summary = f"coroutine {coro.__qualname__!r} was never awaited"
    _record(Leak("coroutine", summary, tuple(origin)), windows)


def _on_warning(message: warnings.WarningMessage) -> None:
    if _windows and issubclass(message.category, ResourceWarning):
        if _on_resource_warning(message):
            return  # the guard reports it, with its creation site, as a failure
    _originals["showwarnmsg"](message)


def _on_resource_warning(message: warnings.WarningMessage) -> bool:
    """Blame a ResourceWarning on the test that made its object; True if handled."""
    source = message.source if message.source is not None else _finalizing_object()
    text = str(message.message)
    site: Site = ()
    windows = [window for window in _windows if window._open]
    kind = _resource_kind(text)
    if source is not None:
        owner = _socket_owner(source)
        process = _process_owner(source)
        if owner is None and process is not None:
            owner, kind = process, "subprocess"
        owner = owner or _lookup(_returned, source, type(source))
        if owner is not None and owner.claimed:
            return True
        if owner is not None:
            # An object we know: blame exactly the tests whose window made it.
            site, windows = owner.site, [w for w in owner.windows if w._open]
        elif _has_socket(source):
            return False  # made outside any test (collection, another thread)
        elif isinstance(getattr(source, "name", None), str):
            name = getattr(source, "name", "")
            windows = [window for window in windows if name in window.file_sites]
            site = windows[0].file_sites[name] if windows else ()
    if not windows:
        return False
    if isinstance(source, socket.socket) and _is_listening(source):
        kind, text = (
            "server",
            f"listening socket {text}: a server was not closed "
            + ("(server.close(); await server.wait_closed())"),
        )
    _record(Leak(kind, text, site), windows, source)
    return True


def _resource_kind(text: str) -> str:
    # Most specific first: a StreamWriter's text also names its transport.
    kinds = {
        "<StreamWriter": "stream",
        "unclosed file": "file",
        "unclosed transport": "transport",
        "unclosed event loop": "event loop",
        "<socket.socket": "socket",
        "subprocess": "subprocess",
    }
    return next((kind for needle, kind in kinds.items() if needle in text), "resource")


def _sockets_of(source: object) -> list[object]:
    # An unclosed transport, stream writer or event loop: its socket tells who made it.
    transport = getattr(source, "_transport", None)
    return [
        candidate
        for candidate in (
            source,
            getattr(source, "_sock", None),
            getattr(source, "_ssock", None),
            getattr(transport, "_sock", None),
        )
        if isinstance(candidate, socket.socket)
    ]


def _socket_owner(source: object) -> _Registered | None:
    for candidate in _sockets_of(source):
        entry = _lookup(_sockets, candidate, type(candidate))
        if entry is not None:
            return entry
    return None


def _process_owner(source: object) -> _Registered | None:
    """The process *source* belongs to: a Popen, asyncio's transport around one, or its pipes."""
    for candidate in (source, getattr(source, "_proc", None)):
        if isinstance(candidate, subprocess.Popen):
            return _lookup(_processes, candidate, subprocess.Popen)
    pipe = getattr(source, "_pipe", source)  # asyncio's pipe transports hold the pipe
    if not isinstance(pipe, io.IOBase):
        return None
    entry = _lookup(_pipes, pipe, type(pipe))
    if entry is None:
        for process in list(_processes.values()):
            if (proc := process.ref()) is not None:
                _register_pipes(proc, process)
        entry = _lookup(_pipes, pipe, type(pipe))
    return entry.part_of if entry is not None else None


def _register_pipes(proc: subprocess.Popen[Any], entry: _Registered) -> None:
    # A process's pipes are part of it: reported or claimed with it, and freed
    # with it (asyncio's pipe transports then warn about them).
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        known = _pipes.get(id(pipe))
        if pipe is not None and (known is None or known.ref() is not pipe):
            part = _Registered(weakref.ref(pipe), entry.site, entry.windows, type(pipe))
            part.part_of = entry
            _pipes[id(pipe)] = part


def _has_socket(source: object) -> bool:
    return bool(_sockets_of(source))


def _finalizing_object() -> object:
    # Some finalizers warn without source= (asyncio's StreamWriter.__del__);
    # the object is then the `self` of the __del__ frame that is warning.
    frame: types.FrameType | None = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            break
        if frame.f_code.co_name == "__del__":
            return frame.f_locals.get("self")
        frame = frame.f_back
    return None


#: Tasks a library starts once per event loop, by design, and stops when the
#: loop closes: (module, qualname) of their coroutine. Never a test's leak.
PER_LOOP_SINGLETONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("sse_starlette.sse", "_shutdown_watcher"),  # sse-starlette: one per thread's loop
    }
)


def is_users_task(task: asyncio.Task[Any]) -> bool:
    """The ownership rule for tasks: True if the test's own code answers for *task*.

    A task counts when its coroutine is user code (not the stdlib, site-packages
    or this kit), or when user code started it through a library (a user frame
    in its creation site: ``server.arun()`` starting the library's checker). A
    task a library started on its own (no user frame: anyio's test runner, a
    per-loop watcher) is the library's, and so is a known per-loop singleton.
    """
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    module = getattr(getattr(coro, "cr_frame", None), "f_globals", {}).get("__name__", "")
    if (module, getattr(coro, "__qualname__", "")) in PER_LOOP_SINGLETONS:
        return False
    if code is not None and not sites.is_library_file(code.co_filename):
        return True
    origin = getattr(coro, "cr_origin", None) or ()
    return sites.first_user_frame(tuple(origin)) is not None


def is_users_generator(agen: Any, site: Site) -> bool:
    """The ownership rule for async generators: True if the test's code answers for *agen*.

    It counts when its code is user code, or when user code iterated it first
    (the innermost frame of *site*). A library's inner generators (httpx's
    ``aiter_lines`` under httpx-sse's ``aiter_sse``) are closed, or dropped, by
    the library's own outer generator, which is the one the user must close.
    """
    if not sites.is_library_file(agen.ag_code.co_filename):
        return True
    return bool(site) and not sites.is_library_file(site[0][0])


def _task_leak(task: asyncio.Task[Any], why: str) -> Leak:
    coro = task.get_coro()
    origin = tuple(getattr(coro, "cr_origin", None) or ())
    name = getattr(coro, "__qualname__", repr(coro))
    summary = f"task {task.get_name()!r} running {name}() was {why}"
    frames = await_chain(coro)
    detail = ""
    if frames:
        detail = "  it was awaiting:\n" + "\n".join(f"    {format_frame(f)}" for f in frames)
    return Leak("task", summary, origin, detail)


def _job_leak(job: jobs.Job, why: str) -> Leak:
    summary = (
        f"executor job {job.function}() was {why}: await it, and since a running job "
        "cannot be cancelled, give it a way to stop (a threading.Event it checks)"
    )
    now = job.where_now()
    detail = ""
    if now:
        detail = "  it is now at:\n" + "\n".join(f"    {format_frame(f)}" for f in now)
    return Leak("executor job", summary, job.site, detail)


async def _on_shutdown_default_executor(self: asyncio.base_events.BaseEventLoop) -> None:
    executor = getattr(self, "_default_executor", None)
    running = [job for job in jobs.running(executor) if not job.internal] if executor else []
    if running:
        why = "still running when its event loop closed, which waited for it"
        for job in running:
            _record(_job_leak(job, why), [w for w in job.owners if w._open], job)
        # Wait here, where a hang watchdog can cancel the wait, rather than in
        # asyncio's thread.join(), which nothing can interrupt.
        waiting = [asyncio.wrap_future(job.future) for job in running if job.future]
        try:
            await asyncio.wait(waiting)
        finally:
            for future in waiting:
                if future.done() and not future.cancelled():
                    future.exception()  # the job's owner saw it already, or never will
    await _originals["shutdown_default_executor"](self)


def _on_cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    open_windows = [window for window in _windows if window._open]
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if loop in loop_hooks.abandoned_loops:
        pending = []  # the hang report named them already
    for task in pending:
        if type(task.get_coro()).__name__ == "async_generator_athrow":
            continue  # asyncio's own aclose() of a dropped generator: reported as that
        windows = [window for window in open_windows if window.is_new_task(task)]
        if windows and is_users_task(task):
            why = "still pending when its event loop closed (asyncio.Runner cancels it silently)"
            _record(_task_leak(task, why), windows, task)
    _originals["cancel_all_tasks"](loop)


def _on_asyncgen_firstiter(self: asyncio.base_events.BaseEventLoop, agen: Any) -> None:
    if _windows:
        windows = _watching()
        if windows:
            _register(_agens, agen, windows, agen.ag_code)
    _originals["firstiter"](self, agen)


def _on_asyncgen_finalizer(self: asyncio.base_events.BaseEventLoop, agen: Any) -> None:
    entry = _lookup(_agens, agen, agen.ag_code)
    if entry is not None and entry.site and not entry.claimed:
        # Only generators the user's own code answers for: a library's internal
        # generators are closed by asyncio's hook when the user's outer one is.
        if is_users_generator(agen, entry.site):
            windows = [window for window in entry.windows if window._open]
            summary = (
                f"async generator {agen.__qualname__!r} was dropped before it finished, "
                "without aclose(): its cleanup runs later in another task, or never "
                "(wrap the loop in contextlib.aclosing())"
            )
            _record(Leak("async generator", summary, entry.site), windows, agen)
    _originals["finalizer"](self, agen)


async def _on_shutdown_asyncgens(self: asyncio.base_events.BaseEventLoop) -> None:
    for agen in list(getattr(self, "_asyncgens", ())):
        entry = _lookup(_agens, agen, agen.ag_code)
        if entry is None or entry.claimed or agen.ag_frame is None:
            continue
        if not is_users_generator(agen, entry.site):
            continue
        windows = [window for window in entry.windows if window._open]
        summary = (
            f"async generator {agen.__qualname__!r} was still suspended when its event "
            "loop shut down: nothing closed it (use contextlib.aclosing())"
        )
        _record(Leak("async generator", summary, entry.site), windows, agen)
    await _originals["shutdown_asyncgens"](self)


def _reachable_from(
    roots: Iterable[object], targets: list[object], limit: int = 200_000
) -> set[int]:
    """Return the ids of *targets* reachable from *roots*, without entering
    event loops, modules, classes or functions (through which everything is
    reachable)."""
    wanted = {id(target) for target in targets}
    found: set[int] = set()
    seen: set[int] = set()
    stack = list(roots)
    while stack and len(seen) < limit and found != wanted:
        obj = stack.pop()
        key = id(obj)
        if key in seen:
            continue
        seen.add(key)
        if key in wanted:
            found.add(key)
        if isinstance(obj, types.FunctionType):
            # A factory fixture's value: what its closure holds is the fixture's,
            # its module globals are not.
            stack.extend(cell.cell_contents for cell in obj.__closure__ or () if _filled(cell))
            continue
        if isinstance(obj, _OPAQUE):
            continue
        stack.extend(gc.get_referents(obj))
    return found


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


#: Objects not followed when looking for what a wide fixture holds: everything is
#: reachable through them. An event loop policy reaches every subprocess through
#: its child watcher (pytest-asyncio's session-wide ``event_loop_policy``).
_OPAQUE: tuple[type, ...] = (
    asyncio.AbstractEventLoop,
    asyncio.AbstractEventLoopPolicy,
    *[kind for kind in [getattr(asyncio, "AbstractChildWatcher", None)] if kind is not None],
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    str,
    bytes,
    int,
    float,
)


def _short_repr(obj: object, limit: int = 200) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_report(test_name: str, leaks: list[Leak]) -> str:
    """Format the leak guard's failure report for one test."""
    noun = "leak" if len(leaks) == 1 else "leaks"
    lines = [f"taskcast leak guard: {test_name} left {len(leaks)} {noun} behind"]
    # The same leak from the same line (a watcher loop run 20 times) is one entry.
    counts: dict[tuple[str, str, Site], list[Leak]] = {}
    for leak in leaks:
        counts.setdefault((leak.kind, leak.summary, leak.site), []).append(leak)
    for same in counts.values():
        text = same[0].format()
        if len(same) > 1:
            head, _, rest = text.partition("\n")
            text = f"{head} (x{len(same)})\n{rest}" if rest else f"{head} (x{len(same)})"
        lines.append(text)
    lines.append('Fix the leak, or opt this test out with @pytest.mark.allow_leaks(reason="...").')
    return "\n".join(lines)
