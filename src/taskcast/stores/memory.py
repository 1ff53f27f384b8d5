"""``memory://``: runs and logs in this process's memory. Fast; gone when the process exits."""

from __future__ import annotations

import bisect
import time
from typing import Any

from ..errors import RunFinished, RunNotFound
from ..models import Event, Run
from ..states import RunState
from ..stats import Activity, RunTimes, Window, tally
from .base import Store, apply_transition


class MemoryStore(Store):
    """Keeps every run and its log in dicts; every write is durable as soon as it returns."""

    def __init__(self, url: str = "memory://") -> None:
        super().__init__()
        self.url = url
        self._runs: dict[str, Run] = {}
        self._logs: dict[str, list[Event]] = {}
        # For ``activity``: the unfinished runs, and the finished ones by finish time.
        self._unfinished: dict[str, Run] = {}
        self._by_finish: list[tuple[float, str]] = []
        self._counts: dict[tuple[str, RunState], int] = {}  # by (task, state): count_runs

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _new_event(self, run: Run, type: str, data: Any, data_json: str | None) -> Event:
        run.last_seq += 1
        event = Event(run.id, run.last_seq, type, data, time.time(), data_json)
        self._logs[run.id].append(event)
        return event

    async def create_run(
        self, run: Run, data: dict[str, Any], *, fresh_id: bool = False
    ) -> tuple[Run, Event | None]:
        existing = self._runs.get(run.id)
        if existing is not None:
            return existing.copy(), None
        stored = run
        self._runs[run.id] = stored
        self._logs[run.id] = []
        self._unfinished[run.id] = stored
        self._count(run.task, run.state, 1)
        event = self._new_event(stored, "queued", data, None)
        self._announce((event,))
        return stored.copy(), event

    async def append(
        self, run_id: str, type: str, data: Any, data_json: str, *, durable: bool = True
    ) -> Event:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.state.is_terminal:
            raise RunFinished(run_id, run.state)
        event = self._new_event(run, type, data, data_json)
        self._announce((event,))
        return event

    async def transition(
        self,
        run_id: str,
        target: RunState,
        event_type: str,
        data: Any,
        *,
        durable: bool = True,
        **fields: Any,
    ) -> tuple[Run, Event] | None:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        before = run.state
        data_json = apply_transition(run, target, event_type, data, fields)
        if data_json is None:
            return None
        self._count(run.task, before, -1)
        self._count(run.task, target, 1)
        if target.is_terminal:
            self._unfinished.pop(run_id, None)
            if run.finished_at is not None:  # usually the newest: insort appends
                bisect.insort(self._by_finish, (run.finished_at, run_id))
        event = self._new_event(run, event_type, data, data_json)
        self._announce((event,))
        return (run if target.is_terminal else run.copy()), event

    async def get_run(self, run_id: str) -> Run | None:
        run = self._runs.get(run_id)
        return None if run is None else run.copy()

    async def list_runs(
        self,
        *,
        state: RunState | None = None,
        task: str | None = None,
        limit: int = 100,
        before: str | None = None,
        parent: str | None = None,
        prefix: str | None = None,
    ) -> list[Run]:
        found: list[Run] = []
        for run_id in sorted(self._runs, reverse=True):
            if before is not None and run_id >= before:
                continue
            if prefix is not None and not run_id.startswith(prefix):
                if run_id < prefix:
                    break  # newest first: every id from here on is below the prefix's range
                continue
            run = self._runs[run_id]
            if (
                (state is None or run.state == state)
                and (task is None or run.task == task)
                and (parent is None or run.parent_id == parent)
            ):
                found.append(run.copy())
                if len(found) >= limit:
                    break
        return found

    def _count(self, task: str, state: RunState, change: int) -> None:
        key = (task, state)
        left = self._counts.get(key, 0) + change
        if left:
            self._counts[key] = left
        else:
            del self._counts[key]

    async def count_runs(self) -> dict[tuple[str, RunState], int]:
        return dict(self._counts)

    async def read_events(self, run_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        log = self._logs.get(run_id)
        if log is None:
            return []
        # seq n lives at index n - 1: the log is gap-free by construction.
        return log[max(after, 0) : max(after, 0) + limit]

    async def unfinished_runs(self) -> list[Run]:
        return [
            run.copy() for run_id, run in sorted(self._runs.items()) if not run.state.is_terminal
        ]

    async def prune(self, finished_before: float) -> int:
        doomed = [
            run_id
            for run_id, run in self._runs.items()
            if run.state.is_terminal
            and run.finished_at is not None
            and run.finished_at < finished_before
        ]
        for run_id in doomed:
            run = self._runs.pop(run_id)
            del self._logs[run_id]
            self._count(run.task, run.state, -1)
        if doomed:
            self._by_finish = [entry for entry in self._by_finish if entry[1] in self._runs]
        return len(doomed)

    async def activity(self, window: Window) -> Activity:
        first = bisect.bisect_left(self._by_finish, (window.start, ""))
        runs = self._runs
        recent = (runs[run_id] for _, run_id in self._by_finish[first:])
        return tally(window, (_times(run) for run in (*recent, *self._unfinished.values())))


def _times(run: Run) -> RunTimes:
    return RunTimes(run.task, run.state.value, run.created_at, run.started_at, run.finished_at)
