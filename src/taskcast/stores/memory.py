"""``memory://``: runs and logs in this process's memory. Fast; gone when the process exits."""

from __future__ import annotations

import bisect
import time
from collections.abc import Collection, Sequence
from typing import Any

from ..errors import RunFinished, RunNotFound
from ..models import Event, Run, ScheduleState
from ..policies import Retention
from ..states import TERMINAL_STATES, RunState
from ..stats import Activity, RunTimes, Window, tally
from .base import Store, apply_transition


class MemoryStore(Store):
    """Keeps every run and its log in dicts; every write is durable as soon as it returns.

    Its default retention keeps the newest 10,000 finished runs of each task, for an hour at
    most: a long-lived process stays bounded (the engine prunes in the background)."""

    default_retention = Retention(age=3600.0, count=10_000)

    def __init__(self, url: str = "memory://") -> None:
        super().__init__()
        self.url = url
        self._runs: dict[str, Run] = {}
        self._logs: dict[str, list[Event]] = {}
        # For ``activity``: the unfinished runs, and the finished ones by finish time.
        self._unfinished: dict[str, Run] = {}
        self._by_finish: list[tuple[float, str]] = []
        self._counts: dict[tuple[str, RunState], int] = {}  # by (task, state): count_runs
        self._stale = 0  # entries of ``_by_finish`` whose run was pruned
        # Per task, the ids of its finished runs in the order they finished (for retention).
        self._finished: dict[str, dict[str, None]] = {}
        self._schedules: dict[str, ScheduleState] = {}

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
        self._unfinished[run.id] = stored
        key = (run.task, run.state)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        seq = run.last_seq = run.last_seq + 1
        event = Event(run.id, seq, _VALUES[run.state], data, time.time(), None)
        self._logs[run.id] = [event]
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

    async def append_many(
        self, run_id: str, entries: Sequence[tuple[str, Any, str]], *, durable: bool = True
    ) -> list[Event]:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.state.is_terminal:
            raise RunFinished(run_id, run.state)
        written = [self._new_event(run, t, d, j) for t, d, j in entries]
        self._announce(written)
        return written

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
        counts = self._counts
        key = (run.task, before)
        left = counts[key] - 1
        if left:
            counts[key] = left
        else:
            del counts[key]
        key = (run.task, target)
        counts[key] = counts.get(key, 0) + 1
        seq = run.last_seq = run.last_seq + 1
        event = Event(run_id, seq, event_type, data, time.time(), data_json)
        self._logs[run_id].append(event)
        if target not in TERMINAL_STATES:
            self._announce((event,))
            return run.copy(), event
        self._unfinished.pop(run_id, None)
        if run.finished_at is not None:
            by_finish = self._by_finish
            entry = (run.finished_at, run_id)
            if not by_finish or by_finish[-1] <= entry:  # usually the newest
                by_finish.append(entry)
            else:
                bisect.insort(by_finish, entry)
        finished = self._finished.get(run.task)
        if finished is None:
            finished = self._finished[run.task] = {}
        finished[run_id] = None
        self._announce((event,))
        return run, event

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
            self._delete(run_id)
        return len(doomed)

    async def activity(self, window: Window) -> Activity:
        first = bisect.bisect_left(self._by_finish, (window.start, ""))
        runs = self._runs
        recent = (runs[i] for _, i in self._by_finish[first:] if i in runs)  # pruned: skipped
        return tally(window, (_times(run) for run in (*recent, *self._unfinished.values())))

    def _delete(self, run_id: str) -> None:
        run = self._runs.pop(run_id)
        del self._logs[run_id]
        self._count(run.task, run.state, -1)
        finished = self._finished.get(run.task)
        if finished is not None:
            finished.pop(run_id, None)
            if not finished:
                del self._finished[run.task]
        # ``_by_finish`` keeps the entry (``activity`` skips it) until half of it is stale:
        # removing each from the middle of the list would cost a copy per run pruned.
        self._stale += 1
        if self._stale > len(self._by_finish) // 2 + 1000:
            self._by_finish = [entry for entry in self._by_finish if entry[1] in self._runs]
            self._stale = 0

    async def prune_task(
        self,
        task: str,
        *,
        finished_before: float | None = None,
        keep: int | None = None,
        spare: Collection[str] = (),
        limit: int = 1000,
    ) -> int:
        finished = self._finished.get(task)
        if not finished:
            return 0
        remaining = len(finished)
        doomed: list[str] = []
        for run_id in finished:  # oldest finished first
            if len(doomed) >= limit:
                break
            beyond = keep is not None and remaining > keep
            run = self._runs[run_id]
            old = (
                finished_before is not None
                and run.finished_at is not None
                and run.finished_at < finished_before
            )
            if not (beyond or old):
                break  # the rest finished later
            if run_id in spare:
                continue
            doomed.append(run_id)
            remaining -= 1
        for run_id in doomed:
            self._delete(run_id)
        return len(doomed)

    async def schedule_state(self, name: str) -> ScheduleState:
        state = self._schedules.get(name)
        return ScheduleState(name) if state is None else ScheduleState(*_fields(state))

    async def set_schedule_paused(self, name: str, paused: bool) -> None:
        self._schedules.setdefault(name, ScheduleState(name)).paused = paused

    async def record_tick(self, name: str, tick: float | None, run_id: str) -> None:
        state = self._schedules.setdefault(name, ScheduleState(name))
        if tick is None:
            state.last_run = run_id
        elif state.last_tick is None or tick > state.last_tick:
            state.last_tick, state.last_run = tick, run_id


_VALUES = {state: state.value for state in RunState}
"""Each state's value as a plain ``str`` (an event's type), without the enum's descriptor."""


def _fields(state: ScheduleState) -> tuple[str, bool | None, float | None, str | None]:
    return state.name, state.paused, state.last_tick, state.last_run


def _times(run: Run) -> RunTimes:
    return RunTimes(run.task, run.state.value, run.created_at, run.started_at, run.finished_at)
