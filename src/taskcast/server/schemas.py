"""The JSON bodies of the HTTP API, as pydantic models: they validate requests and document
responses in /openapi.json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from ..ids import RUN_ID_PATTERN
from ..limits import MAX_TIMEOUT
from ..policies import MAX_AHEAD
from ..states import RunState


def _a_number(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError("must be a number, not text or true/false")
    return value


# JSON integers in bounds: `5` or `5.0` (JSON Schema's "integer" admits both), never `"5"`,
# `true` or `5.5`. (The bounds come before the validator, or pydantic documents them as `ge`/`le`
# instead of `minimum`/`maximum`.)
Attempts = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_a_number)]
Priority = Annotated[int, Field(ge=0, le=9), BeforeValidator(_a_number)]


class SubmitRequest(BaseModel):
    """POST /runs: which task to run, with which arguments and options."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=200, description="A registered task name.")
    args: dict[str, Any] = Field(
        default_factory=dict, description="Arguments by name; see GET /tasks for each schema."
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT,
        allow_inf_nan=False,
        strict=True,  # a number: not "5", not true
        description="Seconds per attempt, at most 30 days (overrides the task's timeout).",
    )
    max_attempts: Attempts | None = Field(
        default=None, description="Attempts in all (overrides the task's)."
    )
    id: str | None = Field(
        default=None,
        pattern=RUN_ID_PATTERN,
        description="Idempotency key: submitting an existing id returns that run, queues nothing.",
    )
    after: list[Annotated[str, Field(pattern=RUN_ID_PATTERN)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Ids of runs this one waits for: it starts once they all ended.",
    )
    after_policy: Literal["fail", "always"] = Field(
        default="fail",
        description='If a dependency did not complete: "fail" this run, or run it "always".',
    )
    run_at: AwareDatetime | None = Field(
        default=None,
        description="Start it at this time (RFC 3339 with its offset, at most a year ahead); it"
        " is `scheduled` until then. A time that has passed starts it at once.",
    )
    delay: float | None = Field(
        default=None,
        ge=0,
        le=MAX_AHEAD,
        allow_inf_nan=False,
        strict=True,
        description="Start it this many seconds from now (instead of `run_at`).",
    )
    priority: Priority | None = Field(
        default=None,
        description="0 to 9, higher first (default: the task's); see docs/semantics.md.",
    )


class CancelRequest(BaseModel):
    """POST /runs/{id}/cancel: why (shown in the ``cancelled`` event)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by request", max_length=1000)


class RunBody(BaseModel):
    """A run as stored."""

    id: str
    task: str
    args: dict[str, Any]
    state: RunState
    attempt: int = Field(description="Attempts started so far (0 while queued).")
    max_attempts: int
    timeout: float | None
    result: Any = Field(description="What the task returned, once completed.")
    error: dict[str, Any] | None = Field(
        description='{"type", "message"} when it did not complete.'
    )
    created_at: float = Field(description="Unix time, seconds.")
    started_at: float | None
    finished_at: float | None
    last_seq: int = Field(description="The seq of the newest event in its log.")
    parent_id: str | None = Field(
        default=None, description="The run that spawned it (ctx.spawn / ctx.map), if any."
    )
    after: list[str] = Field(default_factory=list, description="Runs it waited for.")
    after_policy: Literal["fail", "always"] = "fail"
    retry_of: str | None = Field(
        default=None, description="The run this one retries (POST /runs/{id}/retry), if any."
    )
    run_at: float | None = Field(
        default=None, description="When it may start (Unix time), if submitted with one."
    )
    priority: int = Field(default=0, description="0 to 9, higher first.")
    waiting_for: Literal["rate_limit", "concurrency", "dependencies"] | None = Field(
        default=None,
        description="Why a queued run does not start yet, when a limit holds it.",
    )


class RunList(BaseModel):
    """GET /runs: newest first; pass ``next_before`` as ``before`` for the next page."""

    runs: list[RunBody]
    next_before: str | None


class TaskBody(BaseModel):
    """A registered task: its parameters (JSON Schema) and policy."""

    name: str
    description: str
    kind: str
    parameters: dict[str, Any]
    timeout: float | None
    max_attempts: int
    concurrency: int | None
    concurrency_key: str | None = Field(
        default=None, description="`concurrency` applies per value of this argument."
    )
    rate_limit: str | None = Field(default=None, description='Starts at most, e.g. "100/m".')
    rate_key: str | None = Field(
        default=None, description="`rate_limit` applies per value of this argument."
    )
    priority: int = Field(default=0, description="The default priority of its runs.")
    retention: str | None = Field(default=None, description="Its own retention, if any.")


class TaskList(BaseModel):
    tasks: list[TaskBody]


class ScheduleBody(BaseModel):
    """A periodic schedule: its definition and its state."""

    name: str
    task: str
    args: dict[str, Any]
    cron: str | None = Field(description="A 5-field cron expression, or null with `every`.")
    every: float | None = Field(description="Seconds between ticks, or null with `cron`.")
    timezone: str
    catch_up: Literal["latest", "none"]
    enabled: bool
    paused: bool
    next_tick: float | None = Field(description="Unix time of the next tick (null if paused).")
    last_tick: float | None = Field(description="Unix time of the latest tick fired.")
    last_run: str | None = Field(description="The id of the latest run it started.")
    ticks_started: int = Field(description="Ticks whose run this process started.")
    ticks_skipped: int = Field(description="Ticks this process skipped (paused, missed).")


class ScheduleList(BaseModel):
    schedules: list[ScheduleBody]


class CancelAccepted(BaseModel):
    """The run will end ``cancelled``; watch its events to see when."""

    id: str
    cancelling: Literal[True] = True


class SignalAccepted(BaseModel):
    """The signal is logged and handed to the task."""

    id: str
    signal: str


class Health(BaseModel):
    status: Literal["ok", "draining", "store_unavailable"]
    reason: str | None = Field(
        default=None, description="Why the status is not `ok` (e.g. the store is unreachable)."
    )
    counts: Literal["process", "deployment"] = Field(
        description="Whose runs `queued` and `running` count: this process's (embedded stores) "
        "or every process's on the shared store (Redis)."
    )
    queued: int
    running: int
    watchers: int = Field(
        description="Readers of run logs in this process (one per run for live SSE streams)."
    )
    streams: int = Field(description="SSE streams open on this process.")


class ErrorBody(BaseModel):
    """Every error: a stable code, a sentence, and details that depend on the code."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="A stable code, e.g. unknown_task, run_not_found, queue_full.")
    message: str = Field(description="What went wrong and what to do about it.")


class TaskDurationsBody(BaseModel):
    """How long the runs of a task that finished in the window ran, in seconds."""

    runs: int = Field(description="Runs that finished in the window after starting.")
    p50: float = Field(description="The median duration (nearest rank).")
    p95: float = Field(description="The 95th percentile (nearest rank).")
    max: float = Field(description="The longest.")


class StatsBody(BaseModel):
    """GET /stats: what happened in the window, per bucket (each list has one value a bucket),
    with the whole store's counts."""

    window: float = Field(description="Seconds asked for.")
    start: float = Field(description="Unix time the first bucket starts.")
    end: float = Field(description="Unix time the last bucket ends (it holds the present).")
    step: float = Field(description="Seconds per bucket.")
    times: list[float] = Field(description="Unix time each bucket starts.")
    created: list[int] = Field(description="Runs submitted in each bucket.")
    started: list[int] = Field(description="Runs that started (their latest attempt) in it.")
    finished: dict[str, list[int]] = Field(
        description="Runs that ended in each bucket, by end state (completed, failed, ...)."
    )
    queued: list[int] = Field(description="Runs waiting to start at the end of each bucket.")
    running: list[int] = Field(description="Runs running at the end of each bucket.")
    durations: dict[str, TaskDurationsBody] = Field(
        description="Per task, the durations of its runs that finished in the window."
    )
    counts: dict[str, dict[str, int]] = Field(
        description="Every run in the store by task, then state (the whole store, not the window)."
    )
