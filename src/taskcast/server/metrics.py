"""Prometheus metrics of one App, in their own registry (``GET /metrics``).

Counters and histograms are fed by an event listener (every committed batch passes through it
once); run counts by task and state and the live gauges are read when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ..app import App
from ..events import TERMINAL_EVENT_TYPES
from ..models import Event

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
            "Time of the last attempt of finished runs, by outcome.",
            ["state"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "taskcast_queue_wait_seconds",
            "Time attempts waited in the queue before starting.",
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "taskcast_events", "Events written to run logs.", registry=self.registry
        )
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
        self.events.inc(len(events))
        for event in events:
            if event.type == "started":
                waited = event.data.get("waited") if isinstance(event.data, dict) else None
                if isinstance(waited, int | float):
                    self.queue_wait.observe(waited)
            elif event.type in TERMINAL_EVENT_TYPES:
                duration = event.data.get("duration") if isinstance(event.data, dict) else None
                if isinstance(duration, int | float):
                    self.durations.labels(event.type).observe(duration)

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
