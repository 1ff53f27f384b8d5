"""``taskcast watch``: follow a run's events with a live progress bar, then show how it ended."""

from __future__ import annotations

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

from .http import ApiClient, StreamEvent

EXIT_COMPLETED = 0
EXIT_NOT_COMPLETED = 1
EXIT_INTERRUPTED = 3


def _describe_end(event: StreamEvent) -> tuple[str, int]:
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
    progress: Progress, bar: TaskID, run_id: str, event: StreamEvent, console: Console
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
        # on below; live, the stream ends next (see watch_run).
        progress.console.print(f"server stopped: {json.dumps(event.data)}")
    elif event.type in ("completed", "failed", "cancelled", "timed_out"):
        progress.stop()
        text, code = _describe_end(event)
        console.print(text)
        return code
    return None


async def watch_run(api: ApiClient, run_id: str, console: Console) -> int:
    """Show the run's events until its log ends; returns the exit code (0 only if completed).

    Raises ``ClientError`` for an unknown run or an unreachable server.
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
    events = api.events(run_id)
    try:
        # The bar appears with the first event, so errors (unknown run...) print alone.
        first = await anext(events, None)
        if first is not None:
            with progress:
                ended = _show(progress, bar, run_id, first, console)
                if ended is not None:
                    return ended
                last = first
                async for event in events:
                    last = event
                    ended = _show(progress, bar, run_id, event, console)
                    if ended is not None:
                        return ended
            if last.type == "shutdown":  # the stream ended after it: the server is stopping
                console.print(
                    f"the server shut down before run {run_id} finished; it resumes when the"
                    f" server restarts: taskcast watch {run_id}"
                )
                return EXIT_INTERRUPTED
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    # The stream was empty (204): the run had already finished; show its outcome.
    run = await api.get(run_id)
    if run["state"] == "completed":
        console.print(f"completed: {json.dumps(run['result'])}")
        return EXIT_COMPLETED
    console.print(f"{run['state']}: {json.dumps(run['error'])}")
    return EXIT_NOT_COMPLETED
