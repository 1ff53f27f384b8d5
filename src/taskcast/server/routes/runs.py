"""``/runs``: submit, list, get, cancel, retry and signal runs."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import Response

from ...app import App
from ...errors import RunFinished, RunNotFound
from ...ids import RUN_ID_PATTERN
from ...names import NAME_CHARACTERS, NAME_PATTERN
from ...owners import OWNER_PATTERN
from ...states import RunState
from ..access import owner_of_submit
from ..bodies import StrictJSONRoute
from ..openapi import errors
from ..schemas import (
    CancelAccepted,
    CancelRequest,
    RunBody,
    RunDetail,
    RunList,
    SignalAccepted,
    SubmitRequest,
)
from ..state import app_of, require_open

FINISHING_WAIT = 10.0
"""Seconds a refused cancel waits for a run whose terminal write is under way, to name its end."""

RunId = Annotated[str, Path(description="The run's id.", pattern=RUN_ID_PATTERN)]
TheApp = Annotated[App, Depends(app_of)]

router = APIRouter(dependencies=[Depends(require_open)], route_class=StrictJSONRoute)


@router.post(
    "/runs",
    status_code=201,
    response_model=RunBody,
    responses=errors(404, 413, 429),
    summary="Submit a run",
)
async def submit(app: TheApp, request: SubmitRequest, response: Response) -> dict[str, Any]:
    """Queue a run of `task` with `args`. 404 for an unknown task, 422 naming each bad
    argument (or an `after` id no run has, or one that would make a cycle), 429 with
    Retry-After when the queue is full, 503 while shutting down."""
    run = await app.submit_with(
        request.task,
        request.args,
        id=request.id,
        timeout=request.timeout,
        max_attempts=request.max_attempts,
        after=request.after,
        after_policy=request.after_policy,
        run_at=request.run_at,
        delay=request.delay,
        priority=request.priority,
        owner=owner_of_submit(request.owner),
    )
    response.headers["Location"] = f"/runs/{run.id}"
    return run.to_dict()


@router.get("/runs", response_model=RunList, responses=errors(), summary="List runs")
async def list_runs(
    app: TheApp,
    state: Annotated[RunState | None, Query(description="Only runs in this state.")] = None,
    task: Annotated[str | None, Query(description="Only runs of this task.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    before: Annotated[
        str | None, Query(description="Only runs older than this id (the next page).")
    ] = None,
    parent: Annotated[
        str | None, Query(description="Only the children of this run (ctx.spawn, ctx.map).")
    ] = None,
    prefix: Annotated[
        str | None,
        Query(
            pattern=RUN_ID_PATTERN,
            description="Only runs whose id starts with this (case matters: ids are upper case).",
        ),
    ] = None,
    owner: Annotated[
        str | None, Query(pattern=OWNER_PATTERN, description="Only runs this owner submitted.")
    ] = None,
) -> dict[str, Any]:
    """Runs newest first; the filters combine. Page through with `before` = the previous
    page's `next_before` (null on the last page)."""
    runs = await app.runs(
        state=state,
        task=task,
        limit=limit,
        before=before,
        parent=parent,
        prefix=prefix,
        owner=owner,
    )
    next_before = runs[-1].id if len(runs) == limit else None
    return {"runs": [run.to_dict() for run in runs], "next_before": next_before}


@router.get("/runs/{run_id}", response_model=RunDetail, responses=errors(404), summary="Get a run")
async def get_run(app: TheApp, run_id: RunId) -> dict[str, Any]:
    """The run as stored: state, attempts, times, result or error, and its durable steps
    (``ctx.step``, ``ctx.sleep``, ``ctx.signal``) with their times."""
    body = (await app.get(run_id)).to_dict()
    body["steps"] = await app.steps(run_id)
    return body


@router.post(
    "/runs/{run_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    responses=errors(404, 409, 413),
    summary="Cancel a run",
)
async def cancel(
    app: TheApp, run_id: RunId, request: Annotated[CancelRequest | None, Body()] = None
) -> dict[str, Any]:
    """Cancel a queued or running run: 202, then its log ends with `cancelled`.
    409 if it already finished."""
    reason = (request or CancelRequest()).reason
    answer = await app.request_cancel(run_id, reason)
    if answer.accepted:
        return {"id": run_id, "cancelling": True}
    if not answer.found:
        raise RunNotFound(run_id)
    state = answer.state
    if state is None or not state.is_terminal:
        # It is ending another way (its terminal write is under way): name how it ended.
        run = None
        with suppress(TimeoutError):
            run = await app.wait(run_id, timeout=FINISHING_WAIT)
        state = run.state if run is not None else state
    raise RunFinished(run_id, state.value if state is not None else "finishing")


@router.post(
    "/runs/{run_id}/retry",
    status_code=201,
    response_model=RunBody,
    responses={
        **errors(404, 409, 429),
        409: {
            **errors(409)[409],
            "description": "The run is queued, running or completed: nothing to retry.",
        },
    },
    summary="Retry a run",
)
async def retry(app: TheApp, run_id: RunId, response: Response) -> dict[str, Any]:
    """Start a new run of the same task with the same arguments (and timeout and attempts),
    whose `retry_of` is this run: 201 with the new run. Only a failed, cancelled, timed-out
    or interrupted run can be retried (409 otherwise); an interrupted one is cancelled
    first, so it is not resumed as well. 404 for an unknown run, or a task no longer
    registered."""
    run = await app.retry(run_id)
    response.headers["Location"] = f"/runs/{run.id}"
    return run.to_dict()


@router.post(
    "/runs/{run_id}/signals/{name}",
    status_code=202,
    response_model=SignalAccepted,
    responses=errors(404, 409, 413, 429),
    summary="Send a signal to a run",
)
async def signal(
    app: TheApp,
    run_id: RunId,
    name: Annotated[
        str,
        Path(
            pattern=NAME_PATTERN,
            description=f"The signal name: 1 to 64 characters from {NAME_CHARACTERS}.",
        ),
    ],
    data: Annotated[Any, Body(description="Any JSON, handed to the task.")] = None,
) -> dict[str, Any]:
    """Deliver the signal `name` with JSON `data` to a queued or running run
    (`await ctx.signal(name)` returns `data`). 409 if the run finished."""
    await app.signal(run_id, name, data)
    return {"id": run_id, "signal": name}
