"""The requests of the HTTP API and how to read their answers, without I/O.

Each function returns a ``Call``: the request to send and a ``read`` function that turns the
answer into a result or raises the typed error it stands for. ``AsyncClient`` and ``Client``
only send calls, so both speak the API the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from ..errors import RunFinished, RunNotFound
from ..models import Run
from ..states import RunState
from ..tracing import current_traceparent
from .errors import error_from_response

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task registered on the server: its parameters (JSON Schema) and policy."""

    name: str
    description: str
    kind: str
    parameters: dict[str, Any]
    timeout: float | None
    max_attempts: int
    concurrency: int | None


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request (``method``, ``path``, JSON body, query) and how to ``read`` its answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    json: Any = None
    params: Mapping[str, str | int] | None = None
    headers: Mapping[str, str] | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request(
            self.method, self.path, json=self.json, params=self.params, headers=self.headers
        )


def run_path(run_id: str) -> str:
    """The path of a run (ids are quoted: an id is never taken for another route)."""
    return f"/runs/{quote(run_id, safe='')}"


def run_from_json(body: Mapping[str, Any]) -> Run:
    """A ``Run`` from its JSON form (``GET /runs/{id}``)."""
    return Run(
        id=body["id"],
        task=body["task"],
        args=body["args"],
        state=RunState(body["state"]),
        attempt=body["attempt"],
        max_attempts=body["max_attempts"],
        timeout=body["timeout"],
        result=body["result"],
        error=body["error"],
        created_at=body["created_at"],
        started_at=body["started_at"],
        finished_at=body["finished_at"],
        last_seq=body["last_seq"],
        parent_id=body.get("parent_id"),
        after=body.get("after") or [],
        after_policy=body.get("after_policy", "fail"),
        retry_of=body.get("retry_of"),
        run_at=body.get("run_at"),
        priority=body.get("priority", 0),
        waiting_for=body.get("waiting_for"),
        owner=body.get("owner"),
        traceparent=body.get("traceparent"),
    )


def _json(response: httpx.Response) -> Any:
    if response.is_error:
        raise error_from_response(response)
    return response.json()


def _run(response: httpx.Response) -> Run:
    return run_from_json(_json(response))


def _runs(response: httpx.Response) -> list[Run]:
    return [run_from_json(run) for run in _json(response)["runs"]]


def _tasks(response: httpx.Response) -> list[TaskInfo]:
    fields = TaskInfo.__dataclass_fields__
    return [
        TaskInfo(**{k: v for k, v in task.items() if k in fields})
        for task in _json(response)["tasks"]
    ]


def _cancelled(response: httpx.Response) -> bool:
    try:
        _json(response)
    except (RunNotFound, RunFinished):
        return False  # as in-process: False for an unknown or finished run
    return True


def _accepted(response: httpx.Response) -> None:
    _json(response)


def submit(
    task: str,
    args: Mapping[str, Any] | None,
    *,
    id: str | None,
    timeout: float | None,
    max_attempts: int | None,
    after: Sequence[str] | None = None,
    after_policy: str = "fail",
    run_at: datetime | None = None,
    delay: float | None = None,
    priority: int | None = None,
    owner: str | None = None,
    traceparent: str | None = None,
) -> Call[Run]:
    """``POST /runs``; the ``traceparent`` header is the one given, else the current
    OpenTelemetry span's (``taskcast.tracing``), so the run joins the caller's trace."""
    body: dict[str, Any] = {"task": task, "args": dict(args or {})}
    options = {
        "id": id,
        "timeout": timeout,
        "max_attempts": max_attempts,
        "run_at": None if run_at is None else run_at.isoformat(),
        "delay": delay,
        "priority": priority,
        "owner": owner,
    }
    body.update({name: value for name, value in options.items() if value is not None})
    if after:
        body["after"] = list(after)
    if after_policy != "fail":
        body["after_policy"] = after_policy
    trace = traceparent if traceparent is not None else current_traceparent()
    headers = None if trace is None else {"traceparent": trace}
    return Call("POST", "/runs", _run, json=body, headers=headers)


def get(run_id: str) -> Call[Run]:
    return Call("GET", run_path(run_id), _run)


def runs(
    *,
    state: RunState | str | None,
    task: str | None,
    limit: int,
    before: str | None,
    parent: str | None = None,
    prefix: str | None = None,
) -> Call[list[Run]]:
    params: dict[str, str | int] = {"limit": limit}
    if parent is not None:
        params["parent"] = parent
    if prefix is not None:
        params["prefix"] = prefix
    if state is not None:
        params["state"] = str(state)
    if task is not None:
        params["task"] = task
    if before is not None:
        params["before"] = before
    return Call("GET", "/runs", _runs, params=params)


def cancel(run_id: str, reason: str | None) -> Call[bool]:
    body = {"reason": reason} if reason is not None else None
    return Call("POST", f"{run_path(run_id)}/cancel", _cancelled, json=body)


def retry(run_id: str) -> Call[Run]:
    return Call("POST", f"{run_path(run_id)}/retry", _run)


def signal(run_id: str, name: str, data: Any) -> Call[None]:
    path = f"{run_path(run_id)}/signals/{quote(name, safe='')}"
    return Call("POST", path, _accepted, json=data)


def tasks() -> Call[list[TaskInfo]]:
    return Call("GET", "/tasks", _tasks)


def _schedules(response: httpx.Response) -> list[dict[str, Any]]:
    schedules: list[dict[str, Any]] = _json(response)["schedules"]
    return schedules


def _schedule(response: httpx.Response) -> dict[str, Any]:
    schedule: dict[str, Any] = _json(response)
    return schedule


def schedules() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/schedules", _schedules)


def set_schedule_paused(name: str, paused: bool) -> Call[dict[str, Any]]:
    action = "pause" if paused else "resume"
    return Call("POST", f"/schedules/{quote(name, safe='')}/{action}", _schedule)


def trigger_schedule(name: str) -> Call[Run]:
    return Call("POST", f"/schedules/{quote(name, safe='')}/trigger", _run)
