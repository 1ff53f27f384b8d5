"""The ``shell`` built-in task: run a shell command, stream its output lines.

``shell(cmd, cwd=None, timeout=None)`` runs ``cmd`` with ``/bin/sh -c`` in a new process group
(session), emits each line it writes (stdout and stderr, merged) as a ``log`` event, and returns
``{"exit_code", "pid"}``; a command that exits non-zero is still a result, not a failure.

Cancelled or out of time, it sends SIGTERM to the whole process group (the shell and whatever
it started), SIGKILL after ``KILL_AFTER`` seconds if any is left, and waits for the shell to be
reaped before the run ends. ``timeout`` expiry fails the run with ``TimeoutError``.

Off by default: running shell commands on behalf of HTTP clients is remote code execution by
design. ``register_shell`` registers it; ``taskcast serve --enable-shell`` does so; otherwise a
submit of ``shell`` is refused with a message saying how to turn it on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Annotated, Any

from pydantic import Field

from ..app import App
from ..runs.context import Context

TASK_NAME = "shell"
KILL_AFTER = 2.0
"""Seconds between SIGTERM and SIGKILL for a process group that does not stop."""
MAX_LINE = 64 * 1024
REFUSED_HINT = (
    "the shell task is off; start the server with `taskcast serve --enable-shell` to allow"
    " running shell commands"
)


def register_shell(app: App) -> None:
    """Register ``shell`` on ``app`` (``ValueError`` if the name is taken)."""

    @app.task(name=TASK_NAME)
    async def shell(
        ctx: Context,
        cmd: Annotated[str, Field(min_length=1, max_length=65_536)],
        cwd: str | None = None,
        timeout: Annotated[float | None, Field(gt=0)] = None,
    ) -> dict[str, Any]:
        """Run a shell command; each output line is a `log` event; returns the exit code."""
        try:
            async with asyncio.timeout(timeout):
                return await _run(ctx, cmd, cwd)
        except TimeoutError:
            assert timeout is not None
            raise TimeoutError(f"the command did not finish within {timeout:g} s") from None


def refuse_shell(app: App) -> None:
    """Make a submit of ``shell`` say how to enable it (instead of just "unknown task")."""
    app.refuse_task(TASK_NAME, REFUSED_HINT)


async def _run(ctx: Context, cmd: str, cwd: str | None) -> dict[str, Any]:
    process = await asyncio.create_subprocess_shell(
        cmd,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # its own process group: a cancel kills all it started
        limit=MAX_LINE,
    )
    try:
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # a line longer than MAX_LINE: take it in pieces
                line = await process.stdout.read(MAX_LINE)
            if not line:
                break
            await ctx.log(line.decode(errors="replace").rstrip("\r\n"))
        exit_code = await process.wait()
    except BaseException:
        await _stop(process)
        raise
    return {"exit_code": exit_code, "pid": process.pid}


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers, and reap the shell."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(KILL_AFTER):
            await asyncio.shield(process.wait())
    except TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
    finally:
        # Reap it (and close its pipes) even if this task is cancelled again meanwhile.
        _signal_group(process.pid, signal.SIGKILL)
        await asyncio.shield(process.wait())


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
