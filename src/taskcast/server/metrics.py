"""Prometheus metrics of one App, in their own registry (``GET /metrics``).

Counters and histograms are fed by an event listener (every committed batch passes through it
once); run counts by task and state and the live gauges are read when scraped. The queue wait
and run duration histograms and the events counter are labelled by task: the listener learns a
run's task from its ``queued``/``scheduled`` or ``started`` event (``RunTasks``), so it counts
the runs this process submits or executes. Example queries are in docs/observability.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ..app import App
from ..events import TERMINAL_EVENT_TYPES
from ..models import Event

UNKNOWN_TASK = ""
"""The ``task`` label of events of runs this process saw neither queued nor started."""

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, float("inf"))
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, float("inf"))


class Metrics:
    """The metrics of ``app``; call ``attach`` once the app is started."""

    def __init__(self, app: App) -> None:
        self._app = app
        self.registry = CollectorRegistry()
        self.runs = Gauge(
            "taskcast_runs",
            "Runs in the store, by task and state.",
            ["task", "state"],
            registry=self.registry,
        )
        self.queued = Gauge("taskcast_queued", "Runs waiting to start.", registry=self.registry)
        self.scheduled = Gauge(
            "taskcast_scheduled",
            "Runs waiting for their start time (run_at, delay).",
            registry=self.registry,
        )
        self.rate_limited = Gauge(
            "taskcast_rate_limited",
            "Queued runs held by their task's rate limit.",
            registry=self.registry,
        )
        self.registry.register(_TimeCounters(app))
        self.running = Gauge("taskcast_running", "Runs executing now.", registry=self.registry)
        self.watchers = Gauge(
            "taskcast_watchers",
            "Readers of run logs now (SSE streams among them).",
            registry=self.registry,
        )
        self.durations = Histogram(
            "taskcast_run_duration_seconds",
            "Time of the last attempt of finished runs, by task and outcome.",
            ["task", "state"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "taskcast_queue_wait_seconds",
            "Time attempts waited in the queue before starting, by task.",
            ["task"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "taskcast_events",
            "Events written to run logs, by task.",
            ["task"],
            registry=self.registry,
        )
        self._tasks = RunTasks()
        self.streams = Gauge(
            "taskcast_event_streams",
            "SSE streams open now (GET /runs/{id}/events).",
            registry=self.registry,
        )
        self.open_streams = 0
        self.dropped = Counter(
            "taskcast_watchers_dropped",
            "SSE clients cut because they stopped reading.",
            registry=self.registry,
        )

    def stream_opened(self) -> None:
        self.open_streams += 1

    def stream_closed(self) -> None:
        self.open_streams -= 1

    def stream_dropped(self) -> None:
        self.dropped.inc()

    def attach(self) -> None:
        """Start counting events (the app must be started)."""
        self._app.add_listener(self._on_events)

    def _on_events(self, events: Sequence[Event]) -> None:
        tasks = self._tasks
        counted: dict[str, int] = {}
        for event in events:
            data = event.data if isinstance(event.data, dict) else {}
            task = tasks.learn(event.run_id, data.get("task"))
            counted[task] = counted.get(task, 0) + 1
            if event.type == "started":
                waited = data.get("waited")
                if isinstance(waited, int | float):
                    self.queue_wait.labels(task).observe(waited)
            elif event.type in TERMINAL_EVENT_TYPES:
                duration = data.get("duration")
                if isinstance(duration, int | float):
                    self.durations.labels(task, event.type).observe(duration)
                tasks.forget(event.run_id)
        for task, count in counted.items():
            self.events.labels(task).inc(count)

    async def render(self) -> bytes:
        """The Prometheus text exposition, with the gauges read now."""
        counts = await self._app.count_runs()
        self.runs.clear()
        for (task, state), count in counts.items():
            self.runs.labels(task, state.value).set(count)
        stats = self._app.stats()
        # Counted by the work queue: for this process, or for the whole deployment when many
        # processes share the queue (an API node's own counts would say nothing).
        queue = await self._app.queue_counts()
        self.queued.set(queue.queued)
        self.scheduled.set(queue.scheduled)
        self.rate_limited.set(queue.rate_limited)
        self.running.set(queue.running)
        self.watchers.set(stats["watchers"])
        self.streams.set(self.open_streams)
        return generate_latest(self.registry)


class RunTasks:
    """The task of each run this process has seen and that has not ended, at most ``limit``
    (the oldest forgotten first: a run queued here and run elsewhere never ends here)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._tasks: OrderedDict[str, str] = OrderedDict()

    def learn(self, run_id: str, task: Any) -> str:
        """The task of ``run_id``: ``task`` if it is a name (remembered), else what was
        learnt before, else ``UNKNOWN_TASK``."""
        if isinstance(task, str):
            if run_id not in self._tasks:
                self._tasks[run_id] = task
                if len(self._tasks) > self.limit:
                    self._tasks.popitem(last=False)
            return task
        return self._tasks.get(run_id, UNKNOWN_TASK)

    def forget(self, run_id: str) -> None:
        self._tasks.pop(run_id, None)


class _TimeCounters(Collector):
    """Counters the App keeps (schedule ticks, pruned runs), read when scraped."""

    def __init__(self, app: App) -> None:
        self._app = app

    def collect(self) -> Iterator[Any]:
        counts = self._app.time_counts() if self._app.started else {}
        ticks = CounterMetricFamily(
            "taskcast_schedule_ticks",
            "Ticks of each schedule in this process: started a run, or skipped.",
            labels=["schedule", "outcome"],
        )
        for outcome in ("started", "skipped"):
            for schedule, count in counts.get(f"ticks_{outcome}", {}).items():
                ticks.add_metric([schedule, outcome], count)
        yield ticks
        pruned = CounterMetricFamily(
            "taskcast_runs_pruned", "Finished runs deleted by retention in this process."
        )
        pruned.add_metric([], counts.get("runs_pruned", 0))
        yield pruned
