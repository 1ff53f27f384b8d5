"""Typed errors. Every error says what went wrong and, where it can, what to do.

Each class has a stable ``code`` (used as the ``error`` field of HTTP error bodies) and,
for the HTTP layer, the ``status`` it maps to.
"""

from __future__ import annotations

from typing import Any


class TaskcastError(Exception):
    """Base class of every error taskcast raises on purpose."""

    code = "taskcast_error"
    status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of this error: ``{"error": code, "message": ..., **details}``."""
        return {"error": self.code, "message": self.message, **self.details}


class UnknownTask(TaskcastError):
    """No task is registered under that name."""

    code = "unknown_task"
    status = 404

    def __init__(self, name: str, known: list[str]) -> None:
        listing = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"unknown task {name!r}; registered tasks: {listing}", task=name, known=sorted(known)
        )


class UnknownSchedule(TaskcastError):
    """No schedule is registered under that name."""

    code = "unknown_schedule"
    status = 404

    def __init__(self, name: str, known: list[str]) -> None:
        listing = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"unknown schedule {name!r}; registered schedules: {listing}",
            schedule=name,
            known=sorted(known),
        )


class InvalidArguments(TaskcastError):
    """The arguments do not fit the task's signature; ``problems`` names each parameter."""

    code = "invalid_arguments"
    status = 422

    def __init__(self, task: str, problems: list[dict[str, Any]]) -> None:
        text = "; ".join(f"{p['param']}: {p['problem']}" for p in problems)
        super().__init__(f"bad arguments for task {task!r}: {text}", task=task, problems=problems)


class InvalidRequest(TaskcastError):
    """A request is malformed in a way that is not about one task's arguments."""

    code = "invalid_request"
    status = 422


class NotSerializable(TaskcastError):
    """A value that must be stored as JSON (arguments, event data, a result) is not JSON."""

    code = "not_serializable"
    status = 422


class RunNotFound(TaskcastError):
    """No run has that id."""

    code = "run_not_found"
    status = 404

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}", run_id=run_id)


class RunFinished(TaskcastError):
    """The run already reached a terminal state, so it cannot take this request."""

    code = "run_finished"
    status = 409

    def __init__(self, run_id: str, state: str) -> None:
        super().__init__(f"run {run_id!r} already finished ({state})", run_id=run_id, state=state)


class StepMismatch(TaskcastError):
    """A body that ran again asked, at a position its run's log records, for another durable
    call than the one recorded there (``ctx.step``, ``ctx.sleep``, ``ctx.signal``): it is not
    the same program, so the run fails rather than mix the two (it is never retried).

    Make the body ask for its steps in the same order every time it runs (decisions that vary
    belong inside a step, whose result is recorded), or submit a new run.
    """

    code = "step_mismatch"
    status = 409

    def __init__(self, run_id: str, index: int, *, recorded: str, asked: str) -> None:
        super().__init__(
            f"run {run_id!r} recorded {recorded} at step position {index}, but its body now"
            f" asks for {asked} there: the body does not make the same steps in the same order"
            " as when it ran before",
            run_id=run_id,
            index=index,
            recorded=recorded,
            asked=asked,
        )


class NotRetryable(TaskcastError):
    """Only a run that ended without completing (failed, cancelled, timed out) or was
    interrupted can be retried; this one is still going, or completed."""

    code = "not_retryable"
    status = 409

    def __init__(self, run_id: str, state: str) -> None:
        super().__init__(
            f"run {run_id!r} is {state}; only a failed, cancelled, timed_out or interrupted run"
            " can be retried",
            run_id=run_id,
            state=state,
        )


class QueueFull(TaskcastError):
    """The queue is at its bound; retry after ``retry_after`` seconds."""

    code = "queue_full"
    status = 429

    def __init__(self, limit: int, retry_after: float = 1.0) -> None:
        super().__init__(
            f"the queue is full ({limit} runs waiting); retry in {retry_after:g} s",
            limit=limit,
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class TooManySignals(TaskcastError):
    """The run already holds as many undelivered signals as it may (``limit`` of the signal
    ``name``, or of all names when ``name`` is None): its task has not asked for them yet.
    Retry after ``retry_after`` seconds."""

    code = "too_many_signals"
    status = 429

    def __init__(
        self, run_id: str, limit: int, name: str | None = None, retry_after: float = 1.0
    ) -> None:
        which = f"{name!r} signals" if name is not None else "signals (of all names)"
        super().__init__(
            f"run {run_id!r} already holds {limit} undelivered {which}, as many as it may,"
            f" until its task takes some with ctx.signal(); retry in {retry_after:g} s",
            run_id=run_id,
            limit=limit,
            name=name,
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class ShuttingDown(TaskcastError):
    """The app is shutting down (or not started) and takes no new work."""

    code = "shutting_down"
    status = 503


class StoreError(TaskcastError):
    """The store cannot be opened or used."""

    code = "store_error"
    status = 500


class StoreUnavailable(StoreError):
    """The store cannot be reached right now (Redis away, the SQLite writer stopped): nothing was
    changed; retry after ``retry_after`` seconds, or against another instance."""

    code = "store_unavailable"
    status = 503

    def __init__(self, message: str, retry_after: float = 5.0) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class SchemaError(StoreError):
    """The store was written by a newer taskcast (unknown schema version)."""

    code = "schema_error"


class TaskFailed(TaskcastError):
    """A child run you awaited (``ctx.spawn``, ``ctx.map``) did not complete.

    ``run_id``, ``task``, ``state`` (``failed``, ``cancelled``, ``timed_out``, or
    ``interrupted`` when the process stopped) and ``error`` (``{"type", "message"}``) say which
    and why. From ``ctx.map``: ``partial`` holds the results of the children that completed,
    by their index in the batch.
    """

    code = "task_failed"

    def __init__(self, run_id: str, task: str, state: str, error: dict[str, Any] | None) -> None:
        detail = (error or {}).get("message") or state
        super().__init__(
            f"child run {run_id} ({task}) {state}: {detail}",
            run_id=run_id,
            task=task,
            state=state,
            child_error=error,
        )
        self.run_id = run_id
        self.task = task
        self.state = state
        self.error = error
        self.partial: dict[int, Any] = {}


class BatchTimedOut(TaskcastError, TimeoutError):
    """``ctx.map(..., timeout=S)`` ran out of time: its unfinished children were cancelled.

    ``partial`` holds the results of the children that completed, by their index in the batch;
    ``unfinished`` the indexes of those that did not.
    """

    code = "batch_timed_out"

    def __init__(self, timeout: float, partial: dict[int, Any], unfinished: list[int]) -> None:
        super().__init__(
            f"the batch did not finish within {timeout:g} s: {len(partial)} children completed,"
            f" {len(unfinished)} were cancelled",
            completed=len(partial),
            cancelled=len(unfinished),
        )
        self.partial = partial
        self.unfinished = unfinished


class Unauthorized(TaskcastError):
    """The server requires a bearer token and the client sent none, or a wrong one."""

    code = "unauthorized"
    status = 401


class ServerError(TaskcastError):
    """The server answered with an error that has no type of its own here (an unexpected 5xx,
    a proxy's error page, a route that does not exist...). ``status`` is the HTTP status and
    ``code`` the server's error code (``http_error`` when the answer was not taskcast JSON)."""

    code = "http_error"
    status = 500

    def __init__(self, message: str, *, status: int, code: str = "http_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ConnectionFailed(TaskcastError):
    """A client could not send a request or receive its answer: the server is down, the
    address is wrong, or the connection broke or stayed silent past the read timeout.

    A request that fails this way may still have been carried out (a ``submit`` whose answer was
    lost): give runs an idempotency ``id`` to retry safely.
    """

    code = "connection_failed"
    status = 503


class StreamLost(ConnectionFailed):
    """A client's event stream gave up after ``attempts`` failed reconnects in a row.

    ``last_seq`` is the last event it yielded: ``events(run_id, after=last_seq)`` goes on from
    there, without gap or duplicate. The last failure is the ``__cause__``.
    """

    code = "stream_lost"

    def __init__(self, run_id: str, last_seq: int, attempts: int, reason: str) -> None:
        super().__init__(
            f"lost the event stream of run {run_id!r} after event {last_seq}: {attempts}"
            f" reconnects in a row failed (last: {reason}); resume with after={last_seq}",
            run_id=run_id,
            last_seq=last_seq,
            attempts=attempts,
        )
        self.run_id = run_id
        self.last_seq = last_seq
        self.attempts = attempts
