"""``memory://``: runs and logs in this process's memory. Fast; gone when the process exits."""

from __future__ import annotations

import time
from typing import Any

from ..errors import RunFinished, RunNotFound
from ..models import Event, Run
from ..states import RunState
from .base import Store, apply_transition


class MemoryStore(Store):
    """Keeps every run and its log in dicts; every write is durable as soon as it returns."""

    def __init__(self, url: str = "memory://") -> None:
        super().__init__()
        self.url = url
        self._runs: dict[str, Run] = {}
        self._logs: dict[str, list[Event]] = {}

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
        data_json = apply_transition(run, target, event_type, data, fields)
        if data_json is None:
            return None
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
    ) -> list[Run]:
        found: list[Run] = []
        for run_id in sorted(self._runs, reverse=True):
            if before is not None and run_id >= before:
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

    async def count_runs(self) -> dict[tuple[str, RunState], int]:
        counts: dict[tuple[str, RunState], int] = {}
        for run in self._runs.values():
            key = (run.task, run.state)
            counts[key] = counts.get(key, 0) + 1
        return counts

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
            del self._runs[run_id]
            del self._logs[run_id]
        return len(doomed)
