"""Creation sites: where in the user's code an object was made.

A site is a short tuple of ``(filename, lineno, function)`` frames, innermost
first, captured cheaply (no source lines are read until it is formatted). This
is the same shape as a coroutine's ``cr_origin``, so both format the same way.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import sys
import sysconfig
from collections.abc import Iterable
from types import FrameType

Frame = tuple[str, int, str]
Site = tuple[Frame, ...]

#: How many frames a site keeps. Enough to show the test line and the helper
#: that made the object, small enough to stay cheap on every creation.
DEFAULT_DEPTH = 8

_THIS_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    # The interpreter's own stdlib may live outside a virtualenv's prefix.
    roots.add(os.path.dirname(os.__file__))
    roots.add(_THIS_PACKAGE)
    return tuple(sorted(roots, key=len, reverse=True))


_LIBRARY_ROOTS = _library_roots()


def is_library_file(filename: str) -> bool:
    """Return True if *filename* belongs to the stdlib, site-packages or this kit.

    Frozen and synthetic filenames (``<frozen ...>``, ``<string>``) count as
    library code: a user cannot fix them.
    """
    if filename.startswith("<"):
        return True
    return filename.startswith(_LIBRARY_ROOTS)


#: Frames kept by :func:`capture` when no depth is given (``taskcast_origin_depth``).
depth = DEFAULT_DEPTH

#: How far :func:`capture` walks past *depth* to find user frames.
_USER_FRAME_REACH = 64

#: User frames a site keeps: the innermost ones and the outermost (the test's line).
USER_FRAMES = 4

#: The frame that runs one step of the event loop: what is above it on the
#: stack is the loop's runner (pytest, or an outer test under pytester), not
#: the code that made the object.
_LOOP_STEP = asyncio.events.Handle._run.__code__


def capture(skip: int = 1, depth: int | None = None) -> Site:
    """Capture the caller's stack as a site, innermost frame first.

    *skip* frames above this function are dropped (1 drops the caller of
    ``capture`` itself). Keeps *depth* frames (default: the module's ``depth``,
    set from ``taskcast_origin_depth``), then walks on (up to 64 frames, never
    past the event loop's step) keeping only user frames: the innermost ones, up
    to ``USER_FRAMES - 1``, and the outermost, which is the test's own line when
    the object was made deep inside the code under test. When the stack has no
    user frame (it starts in the event loop), the user frames of the running
    task's coroutine origin stand in (``asyncio.ensure_future(asyncio.to_thread(...))``).
    Costs one attribute walk per frame; no I/O.
    """
    keep = globals()["depth"] if depth is None else depth
    frame: FrameType | None = sys._getframe(skip + 1)
    frames: list[Frame] = []
    users = 0
    outermost: Frame | None = None
    for walked in range(keep + _USER_FRAME_REACH):
        if frame is None or frame.f_code is _LOOP_STEP:
            break
        code = frame.f_code
        user = not is_library_file(code.co_filename)
        here = (code.co_filename, frame.f_lineno, code.co_name)
        if walked < keep or (user and users < USER_FRAMES - 1):
            frames.append(here)
            users += user
        elif user:
            outermost = here
        frame = frame.f_back
    if outermost is not None:
        frames.append(outermost)
    elif not users:
        frames.extend(f for f in _running_task_origin() if not is_library_file(f[0]))
    return tuple(frames)


def _running_task_origin() -> Site:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop runs in this thread
        return ()
    coro = task.get_coro() if task is not None else None
    return tuple(getattr(coro, "cr_origin", None) or ())


def first_user_frame(site: Site) -> Frame | None:
    """Return the innermost frame of *site* that is in the user's code, if any."""
    for frame in site:
        if not is_library_file(frame[0]):
            return frame
    return None


def format_frame(frame: Frame) -> str:
    """Format one frame as ``path:line in function`` followed by its source line."""
    filename, lineno, function = frame
    line = linecache.getline(filename, lineno).strip()
    text = f"{_short(filename)}:{lineno} in {function}"
    return f"{text}\n        {line}" if line else text


def format_site(site: Iterable[Frame], limit: int = 4) -> str:
    """Format a site for a failure report: user frames only, at most *limit*.

    Library frames are shown only when the site has no user frame at all, so
    the report points at the line the reader can change. With more user frames
    than *limit*, the innermost ``limit - 1`` and the outermost are shown.
    """
    frames = list(site)
    user = [frame for frame in frames if not is_library_file(frame[0])]
    chosen = user or frames
    if not chosen:
        return "    (creation site unknown)"
    lines = [f"    {format_frame(frame)}" for frame in chosen]
    if len(lines) > limit >= 2:
        lines = [*lines[: limit - 1], "    ...", lines[-1]]
    return "\n".join(lines[: limit + 1])


def _short(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # different drive on Windows
        return filename
    return filename if relative.startswith("..") else relative
