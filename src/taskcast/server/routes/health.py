"""``/health`` (liveness, answered even while shutting down) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..bodies import StrictJSONRoute
from ..openapi import errors
from ..schemas import Health
from ..state import ServerState, require_open, state_of

State = Annotated[ServerState, Depends(state_of)]

router = APIRouter(route_class=StrictJSONRoute)


@router.get(
    "/health",
    response_model=Health,
    summary="Liveness",
    responses={503: {"model": Health, "description": "Shutting down, or the store is away."}},
)
async def health(state: State) -> JSONResponse:
    """200 while serving; 503 once shutdown began or while the store cannot be used (take
    the instance out of rotation); `reason` says why."""
    app = state.app
    stats = app.stats()
    status, reason = ("ok", None) if app.accepting else ("draining", "shutting down")
    problem = await app.store.problem() if app.accepting else None
    if problem is not None:
        status, reason = "store_unavailable", problem
    queued, running, scope = stats["queued"], stats["running"], "process"
    if problem is None:  # a shared queue counts for the whole deployment
        counts = await app.queue_counts()
        queued, running, scope = counts.queued, counts.running, counts.scope
    body = {
        "status": status,
        "reason": reason,
        "counts": scope,
        "queued": queued,
        "running": running,
        "watchers": stats["watchers"],
        "streams": state.metrics.open_streams,
    }
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **errors(),
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
    },
    summary="Prometheus metrics",
    dependencies=[Depends(require_open)],
)
async def prometheus_metrics(state: State) -> Response:
    """Runs by task and state, durations, queue wait, events, watchers (Prometheus text)."""
    return Response(await state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
