"""How ``taskcast runs`` and ``taskcast get`` show runs to a person: relative times, short ids,
and a table that fits the terminal (80 columns and up) without cutting a cell."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.table import Table

from ..models import Run
from .run_ids import shortest_unique

COLUMN_GAP = 2
OPTIONAL_COLUMNS = ("attempt", "duration")
"""Dropped, in this order, when the terminal is too narrow for them."""


def span(seconds: float) -> str:
    """A length of time the way a person reads it: ``0.4s``, ``12s``, ``3m05s``, ``2h10m``,
    ``3d4h``. Negative spans (clocks apart) read as ``0s``."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def age(timestamp: float | None, now: float) -> str:
    """How long ago ``timestamp`` was (``5m02s ago``), or ``-``."""
    return "-" if timestamp is None else f"{span(now - timestamp)} ago"


def duration(run: Run, now: float) -> str:
    """How long the run ran: finished - started, or so far (``12s+``) while it runs."""
    if run.started_at is None:
        return "-"
    if run.finished_at is None:
        return f"{span(now - run.started_at)}+"
    return span(run.finished_at - run.started_at)


def clock(timestamp: float | None, now: float) -> str:
    """An absolute local time with its age: ``2026-12-02 09:41:07 (3m05s ago)`` (``(in 1m30s)``
    for a time to come), or ``-``."""
    if timestamp is None:
        return "-"
    when = datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
    if timestamp > now:
        return f"{when} (in {span(timestamp - now)})"
    return f"{when} ({age(timestamp, now)})"


def _cells(run: Run, id_length: int | None, now: float) -> dict[str, str]:
    return {
        "id": run.id if id_length is None else run.id[:id_length],
        "task": run.task,
        "state": run.state.value,
        "attempt": f"{run.attempt}/{run.max_attempts}",
        "age": span(now - run.created_at),
        "duration": duration(run, now),
    }


def _width(rows: list[dict[str, str]], columns: Sequence[str]) -> int:
    widths = [max(len(name), *(len(row[name]) for row in rows)) for name in columns]
    return sum(widths) + COLUMN_GAP * (len(columns) - 1)


def runs_table(runs: Sequence[Run], width: int, now: float | None = None) -> Table:
    """The runs as a table at most ``width`` characters wide.

    Full ids when they fit, else the shortest prefixes (12 characters or more) that tell the
    listed runs apart, which every command accepts in place of the id; then the optional
    columns (attempt, duration) go before any cell is cut. Ages and durations are relative.
    """
    now = time.time() if now is None else now
    columns = ["id", "task", "state", "attempt", "age", "duration"]
    rows = [_cells(run, None, now) for run in runs]
    if rows and _width(rows, columns) > width:
        short = shortest_unique([run.id for run in runs])
        rows = [_cells(run, short, now) for run in runs]
    for optional in OPTIONAL_COLUMNS:
        if not rows or _width(rows, columns) <= width:
            break
        columns.remove(optional)
    table = Table(
        box=None,
        pad_edge=False,
        padding=(0, COLUMN_GAP // 2),
        header_style="bold",
    )
    for name in columns:
        # Ids are copied into other commands and states are read by eye: never cut them.
        flexible = name == "task"
        table.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis" if flexible else "fold",
            justify="right" if name in ("age", "duration") else "left",
        )
    for row in rows:
        table.add_row(*(row[name] for name in columns))
    return table


def schedules_table(schedules: Sequence[Mapping[str, Any]], now: float | None = None) -> Table:
    """``taskcast schedules``: one row per schedule: when it ticks, its next and last tick, and
    its last run."""
    now = time.time() if now is None else now
    table = Table(box=None, pad_edge=False, padding=(0, COLUMN_GAP, 0, 0))
    for column in ("name", "task", "when", "state", "next", "last", "last run"):
        table.add_column(column, no_wrap=True)
    for schedule in schedules:
        every = schedule.get("every")
        when = f"every {span(every)}" if every else f"{schedule['cron']} {schedule['timezone']}"
        next_tick = schedule.get("next_tick")
        table.add_row(
            schedule["name"],
            schedule["task"],
            when,
            "paused" if schedule["paused"] else "active",
            "-" if next_tick is None else f"in {span(next_tick - now)}",
            age(schedule.get("last_tick"), now),
            schedule.get("last_run") or "-",
        )
    return table
