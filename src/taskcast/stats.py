"""What happened over a time window, for charts (``GET /stats``, ``App.activity``).

A window is cut into ``count`` buckets of ``step`` seconds, aligned on multiples of ``step`` (so
two answers a few seconds apart share their buckets), the last one holding the present. For each
bucket: runs created, started and finished (by end state), and how many runs were queued and
running at the bucket's end (the last bucket's end is in the future: that is *now*). Per task:
how long the runs that finished in the window ran (nearest-rank p50 and p95, and the longest).

Everything is derived from the runs' stored times (``created_at``, ``started_at``,
``finished_at``), so it needs no sampling and reads the same on every process of a shared store.
A run is *queued* from its creation to its start (to its end if it never started), *running*
from its start to its end. ``started_at`` is the latest attempt's, so a retried run counts as
queued until that attempt and its duration is that attempt's; a queued run waiting for its retry
counts as queued since its creation; an ``interrupted`` run counts as neither after its start.

Only the runs that matter are read: those that finished in the window or after it (a store reads
them by finish time) and those unfinished (few: they are bounded by the queue and the workers);
a run that finished before the window played no part in it. ``Tally`` adds runs up; a store may
instead count in its own query language, to the same definitions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import InvalidRequest
from .states import TERMINAL_STATES, RunState

MAX_BUCKETS = 1440
"""Buckets in one answer at most (a day by the minute): what a chart can show, and a bound on
the answer's size and cost."""

MAX_WINDOW = 30 * 86400.0
"""The longest window, in seconds (30 days)."""

MIN_STEP = 1.0
"""The shortest bucket, in seconds."""

DEFAULT_WINDOW = 3600.0
DEFAULT_STEP = 60.0

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,6})?[smhd]?$"
"""What ``seconds_from_text`` reads (also the query parameters' pattern in OpenAPI)."""
_SECONDS = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)([smhd]?)")

FINISHED_STATES = tuple(state.value for state in RunState if state in TERMINAL_STATES)
"""The end states ``finished`` is split by, in the order of ``RunState``."""

PERCENTILES = (50, 95)


def seconds_from_text(text: str, name: str) -> float:
    """``"90"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"1.5d"`` as seconds.

    Raises ``InvalidRequest`` naming the query parameter ``name`` (``query.window``) for
    anything else (a sign, an exponent, ``inf``, ``nan``, another unit).
    """
    found = _SECONDS.fullmatch(text)
    if found is None:
        raise _invalid(
            f"query.{name}",
            f"must be a duration such as 90s, 15m, 1h or 1d (a number of seconds without a"
            f" unit), got {text!r}",
        )
    return float(found.group(1)) * _UNITS[found.group(2)]


def _invalid(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(
        f"{param}: {problem}", param=param, problems=[{"param": param, "problem": problem}]
    )


def window_problem(window: float, step: float) -> tuple[str, str] | None:
    """``(field, problem)`` when ``window`` and ``step`` (seconds) cannot make a window: each
    must be finite, ``step`` at least ``MIN_STEP`` and at most ``window``, ``window`` at most
    ``MAX_WINDOW``, and there may be at most ``MAX_BUCKETS`` steps in the window."""
    for name, value in (("window", window), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return name, f"must be a number of seconds, got {value!r}"
        if not math.isfinite(value) or value <= 0:
            return name, f"must be a positive number of seconds, got {value!r}"
    if window > MAX_WINDOW:
        return "window", f"must be at most {MAX_WINDOW:g} seconds (30 days), got {window:g}"
    if step < MIN_STEP:
        return "step", f"must be at least {MIN_STEP:g} second, got {step:g}"
    if step > window:
        return "step", f"must be at most the window ({window:g} seconds), got {step:g}"
    if math.ceil(window / step) > MAX_BUCKETS:
        return "step", (
            f"makes {math.ceil(window / step)} buckets of the {window:g}-second window; at most"
            f" {MAX_BUCKETS} (use a step of at least {math.ceil(window / MAX_BUCKETS):g} seconds)"
        )
    return None


@dataclass(frozen=True, slots=True)
class Window:
    """``count`` buckets of ``step`` seconds from ``start`` (Unix time)."""

    start: float
    step: float
    count: int

    @classmethod
    def ending_at(cls, now: float, window: float, step: float, *, where: str = "") -> Window:
        """The window of ``window`` seconds (rounded up to whole steps) whose last bucket holds
        ``now``, its buckets aligned on multiples of ``step``.

        Raises ``InvalidRequest`` naming the field (``window`` or ``step``, after ``where``, such
        as ``query.``) for values ``window_problem`` refuses.
        """
        problem = window_problem(window, step)
        if problem is not None:
            raise _invalid(where + problem[0], problem[1])
        count = math.ceil(window / step)
        end = (math.floor(now / step) + 1) * step
        return cls(end - count * step, float(step), count)

    @property
    def end(self) -> float:
        return self.start + self.count * self.step

    def bucket(self, at: float) -> int:
        """The bucket holding the instant ``at``: below 0 before the window, ``count`` or more
        after it. The same arithmetic as the stores' queries (``CAST((at - start) / step AS
        INTEGER)``, for ``at >= start``), so both put an instant in the same bucket."""
        return math.floor((at - self.start) / self.step)


class RunTimes(NamedTuple):
    """What ``Tally`` reads of a run."""

    task: str
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class TaskDurations:
    """How long the runs of one task that finished in the window ran (seconds)."""

    runs: int
    p50: float
    p95: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "p50": self.p50, "p95": self.p95, "max": self.max}


def nearest_rank(count: int, percentile: int) -> int:
    """The 1-based rank of the ``percentile``-th of ``count`` sorted values (nearest rank)."""
    return max(1, (count * percentile + 99) // 100)


def durations_of(values: list[float]) -> TaskDurations:
    """``TaskDurations`` of a non-empty list of durations (sorted here)."""
    values.sort()
    count = len(values)
    p50, p95 = (values[nearest_rank(count, p) - 1] for p in PERCENTILES)
    return TaskDurations(count, p50, p95, values[-1])


@dataclass(slots=True)
class Activity:
    """What happened in ``window``, bucket by bucket (see the module docstring).

    ``created``, ``started``: runs per bucket; ``finished``: runs per bucket by end state;
    ``queued``, ``running``: runs in that state at the end of each bucket; ``durations``: per
    task, of the runs that finished in the window after starting.
    """

    window: Window
    created: list[int]
    started: list[int]
    finished: dict[str, list[int]]
    queued: list[int]
    running: list[int]
    durations: dict[str, TaskDurations] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /stats`` (without its ``counts``)."""
        window = self.window
        return {
            "start": window.start,
            "end": window.end,
            "step": window.step,
            "times": [window.start + index * window.step for index in range(window.count)],
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "queued": self.queued,
            "running": self.running,
            "durations": {task: d.to_dict() for task, d in sorted(self.durations.items())},
        }


class Tally:
    """Adds runs up into an ``Activity``: ``add`` each run that finished at or after the
    window's start or is unfinished, in any order, then ``activity()``.

    Counts that a store computed itself go in with ``count`` (per series and bucket) and
    ``set_durations``. Queued and running are kept as changes per bucket (+1 where an interval
    starts, -1 where it ends; one before the window lands in bucket 0) and summed at the end.
    """

    __slots__ = ("_changes", "_computed", "_durations", "_finished", "_series", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        zeros = [0] * window.count
        self._series = {"created": zeros[:], "started": zeros[:]}
        self._changes = {"queued": zeros[:], "running": zeros[:]}
        self._finished = {state: zeros[:] for state in FINISHED_STATES}
        self._durations: dict[str, list[float]] = {}
        self._computed: dict[str, TaskDurations] | None = None

    def count(self, series: str, bucket: int, runs: int) -> None:
        """Add ``runs`` to bucket ``bucket`` of ``series``: ``created``, ``started``, a finished
        state (``failed``...), or a change of ``queued``/``running`` (``bucket`` below 0: before
        the window). Buckets past the window are ignored."""
        if bucket >= self.window.count:
            return
        if series in self._changes:
            self._changes[series][max(bucket, 0)] += runs
        elif bucket >= 0:
            target = self._series.get(series)
            (self._finished[series] if target is None else target)[bucket] += runs

    def set_durations(self, durations: dict[str, TaskDurations]) -> None:
        """Durations a store computed itself (they replace those ``add`` collected)."""
        self._durations = {}
        self._computed = dict(durations)

    def add(self, run: RunTimes) -> None:
        """Count one run (see the module docstring for its intervals)."""
        bucket = self.window.bucket
        created, started, finished = run.created_at, run.started_at, run.finished_at
        if finished is not None:
            started_in = None if started is None else bucket(started)
            self.add_ended(run.state, bucket(finished), bucket(created), started_in, 1)
            if started is not None and self.window.start <= finished < self.window.end:
                self._durations.setdefault(run.task, []).append(finished - started)
            return
        self.count("created", bucket(created), 1)
        self.count("queued", bucket(created), 1)
        if started is not None and run.state in (RunState.RUNNING, RunState.INTERRUPTED):
            self.count("started", bucket(started), 1)
            self.count("queued", bucket(started), -1)
            if run.state == RunState.RUNNING:
                self.count("running", bucket(started), 1)
        elif started is not None:  # queued again, waiting for its retry
            self.count("started", bucket(started), 1)

    def add_ended(
        self, state: str, ended: int, created: int, started: int | None, runs: int
    ) -> None:
        """Count ``runs`` runs that ended in ``state``, in bucket ``ended``, created in bucket
        ``created`` and started in bucket ``started`` (``None``: never started; buckets below
        0 are before the window): queued from their creation to their start (or end), running
        from their start to their end."""
        self.count("created", created, runs)
        if state in self._finished:
            self.count(state, ended, runs)
        self.count("queued", created, runs)
        if started is None:
            self.count("queued", ended, -runs)
            return
        self.count("started", started, runs)
        self.count("queued", started, -runs)
        self.count("running", started, runs)
        self.count("running", ended, -runs)

    def activity(self) -> Activity:
        """The sums so far."""
        levels = {}
        for series, changes in self._changes.items():
            level, values = 0, []
            for change in changes:
                level += change
                values.append(level)
            levels[series] = values
        durations = self._computed
        if durations is None:
            durations = {task: durations_of(values) for task, values in self._durations.items()}
        return Activity(
            self.window,
            self._series["created"],
            self._series["started"],
            self._finished,
            levels["queued"],
            levels["running"],
            durations,
        )


def tally(window: Window, runs: Iterable[RunTimes]) -> Activity:
    """``Activity`` of ``runs`` (each finished at or after ``window.start``, or unfinished)."""
    counter = Tally(window)
    for run in runs:
        counter.add(run)
    return counter.activity()
