"""``taskcast watch``: follow a run's events with a live progress bar, then show how it ended."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ..client import AsyncClient
from ..errors import StreamLost
from ..models import Event, compact_json

EXIT_COMPLETED = 0
EXIT_NOT_COMPLETED = 1
EXIT_INTERRUPTED = 3


def _describe_end(event: Event) -> tuple[str, int]:
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    if event.type == "completed":
        return f"completed: {json.dumps(data.get('result'))}", EXIT_COMPLETED
    error = data.get("error") or {}
    if event.type == "failed":
        message = error.get("message") if isinstance(error, dict) else error
        kind = error.get("type", "error") if isinstance(error, dict) else "error"
        return f"failed: {kind}: {message}", EXIT_NOT_COMPLETED
    if event.type == "cancelled":
        return f"cancelled: {data.get('reason', 'no reason given')}", EXIT_NOT_COMPLETED
    if event.type == "timed_out":
        return f"timed out after {data.get('timeout')} s", EXIT_NOT_COMPLETED
    return f"ended with {event.type}", EXIT_NOT_COMPLETED


def _show(
    progress: Progress, bar: TaskID, run_id: str, event: Event, console: Console
) -> int | None:
    """Show one event; the exit code once the run's log ended, else None."""
    if event.type == "progress" and isinstance(event.data, dict):
        data = event.data
        progress.update(
            bar,
            completed=float(data.get("current") or 0),
            total=float(data["total"]) if data.get("total") is not None else None,
            description=str(data.get("message") or run_id),
        )
    elif event.type == "started":
        progress.update(bar, description=f"{run_id} running")
    elif event.type == "retrying":
        progress.console.print(f"retrying: {json.dumps(event.data)}")
    elif event.type == "log" and isinstance(event.data, dict):
        progress.console.print(str(event.data.get("message", "")))
    elif event.type == "shutdown":
        # A server stopped while the run was unfinished. Replayed after a restart, the run goes
        # on below; live, the client reconnects until the server is back (see watch_run).
        progress.console.print(f"server stopped: {json.dumps(event.data)}")
    elif event.type in ("completed", "failed", "cancelled", "timed_out"):
        progress.stop()
        text, code = _describe_end(event)
        console.print(text)
        return code
    return None


async def watch_run(client: AsyncClient, run_id: str, console: Console) -> int:
    """Show the run's events until its log ends; returns the exit code (0 only if completed).

    Rides out a server restart (the client reconnects); if the server stays down after a
    ``shutdown`` event, says so and returns 3. Raises the client's typed errors (unknown run,
    unreachable server...).
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bar = progress.add_task(f"{run_id} queued", total=None)
    last: Event | None = None
    async with contextlib.aclosing(client.events(run_id)) as events:
        try:
            # The bar appears with the first event, so errors (unknown run...) print alone.
            last = await anext(events, None)
            if last is not None:
                with progress:
                    ended = _show(progress, bar, run_id, last, console)
                    if ended is not None:
                        return ended
                    async for last in events:
                        ended = _show(progress, bar, run_id, last, console)
                        if ended is not None:
                            return ended
        except StreamLost:
            if last is None or last.type != "shutdown":
                raise
            console.print(
                f"the server shut down before run {run_id} finished; it resumes when the"
                f" server restarts: taskcast watch {run_id}"
            )
            return EXIT_INTERRUPTED
    # The stream was empty (204): the run had already finished; show its outcome.
    run = await client.get(run_id)
    if run.state == "completed":
        console.print(f"completed: {json.dumps(run.result)}")
        return EXIT_COMPLETED
    console.print(f"{run.state.value}: {json.dumps(run.error)}")
    return EXIT_NOT_COMPLETED


async def watch_run_json(client: AsyncClient, run_id: str, console: Console) -> int:
    """Print the run's events as JSON lines (``{"run_id", "seq", "type", "data", "at"}``) until
    its log ends; the exit code is ``watch_run``'s. Raises the client's typed errors."""
    last: Event | None = None
    async with contextlib.aclosing(client.events(run_id)) as events:
        try:
            async for last in events:
                console.file.write(compact_json(last.to_dict()) + "\n")
                console.file.flush()
                if last.is_terminal:
                    return _describe_end(last)[1]
        except StreamLost:
            if last is None or last.type != "shutdown":
                raise
            return EXIT_INTERRUPTED
    run = await client.get(run_id)  # an empty log (204): the run had already finished
    return EXIT_COMPLETED if run.state == "completed" else EXIT_NOT_COMPLETED
