"""The HTTP API of an App (docs/http.md): ``create_app(app)`` builds the FastAPI application.

Handlers are thin: each calls one App method and returns its result as JSON; errors are the
engine's typed errors, turned into one JSON shape by ``errors.py``.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp

from .. import __version__
from ..app import App
from ..cursors import MAX_SEQ, SEQ_PATTERN
from ..errors import RunFinished, ShuttingDown
from ..ids import RUN_ID_PATTERN
from ..names import NAME_CHARACTERS, NAME_PATTERN
from ..owners import OWNER_PATTERN
from ..states import RunState
from .access import owner_of_submit
from .api_docs import api_docs_router
from .auth import BearerTokenAuth
from .bodies import StrictJSONRoute
from .body_limit import DEFAULT_MAX_BODY, BodyLimit
from .broadcast import Hub
from .changes import RunChanges
from .dashboard import dashboard_router
from .errors import install_error_handlers
from .hosts import ANY_HOST, HostCheck
from .metrics import Metrics
from .openapi import complete, errors
from .replay import ReplayBudget
from .schemas import (
    CancelAccepted,
    CancelRequest,
    Health,
    RunBody,
    RunList,
    ScheduleBody,
    ScheduleList,
    SignalAccepted,
    SubmitRequest,
    TaskList,
)
from .sse import EventStreamResponse, StreamSettings
from .stats_route import stats_router
from .stream_route import EventStreamRoute, read_cursor
from .tracing import TraceContext

FINISHING_WAIT = 10.0
"""Seconds a refused cancel waits for a run whose terminal write is under way, to name its end."""

DESCRIPTION = """\
Submit runs of registered tasks, watch their events live over Server-Sent Events, cancel them.

Errors are JSON: `{"error": "<code>", "message": "<what went wrong and what to do>", ...}`.
If the server was started with a token, every route but `/health` (and these docs) needs
`Authorization: Bearer <token>` (the event streams also take `?token=`, for EventSource).
"""

RunId = Annotated[str, Path(description="The run's id.", pattern=RUN_ID_PATTERN)]


def resume_point(last_event_id: str | None, after: int | None) -> int:
    """Where a stream starts: after ``Last-Event-ID`` if sent (a reconnect), else ``after``.

    The header wins because an EventSource reconnects to the same URL: its ``?after=`` is the
    page's starting point, the header is how far it got since. Raises ``InvalidRequest`` naming
    ``Last-Event-ID`` for a header that is not a seq (``taskcast.cursors``: we only ever send
    seqs as ids).
    """
    text = None if last_event_id is None else last_event_id.strip(" \t")  # HTTP's spaces
    if text:
        return read_cursor(text, "header", "Last-Event-ID")
    return after or 0


def create_app(
    app: App,
    *,
    token: str | None = None,
    stream_settings: StreamSettings | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    allowed_hosts: Sequence[str] | None = None,
) -> ASGIApp:
    """The ASGI application serving ``app``: FastAPI, with the event streams taken ahead of it
    (``stream_route.py``), the token checked ahead of both and the ``Host`` ahead of all.

    Its lifespan starts ``app`` if it is not started yet and shuts it down on exit (both are
    no-ops when ``serve`` already did them). ``token``: require this bearer token (see
    ``auth.py``). ``stream_settings``: keep-alive, write deadline and retry of event streams.
    ``max_body``: largest request body in bytes (413 beyond). ``allowed_hosts``: the ``Host``
    names answered (see ``hosts.py``; ``serve`` derives them from where it listens); ``None``
    answers any.
    """
    settings = stream_settings or StreamSettings()
    metrics = Metrics(app)
    changes = RunChanges(app)
    hub = Hub(app)
    replays = ReplayBudget()

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        if not app.started:
            await app.start()
        metrics.attach()
        changes.attach()
        yield
        if not app.stopped:
            await app.shutdown()
        await hub.close()

    async def open_stream(run_id: str, after: int | None, last_event_id: str | None) -> Response:
        require_open()
        cursor = resume_point(last_event_id, after)
        run = await app.get(run_id)
        if run.is_finished and cursor >= run.last_seq:
            # An EventSource reconnects after every end of stream; 204 is what makes it stop.
            return Response(status_code=204)
        return EventStreamResponse(
            app, run_id, cursor, settings, observer=metrics, hub=hub, replays=replays
        )

    def require_open() -> None:
        # After shutdown the store is closed: refuse cleanly instead of failing on it.
        if app.stopped:
            raise ShuttingDown("taskcast is shutting down; retry against another instance")

    api = FastAPI(
        title="taskcast",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # api_docs.py serves /docs from the package
        redoc_url=None,
        # A path is a route or a 404: no redirect to its twin without the trailing slash
        # (POST /runs/X/signals/ names no signal).
        redirect_slashes=False,
    )
    complete(api, bearer=bool(token))
    # Routes that read the store; /health and / answer even while shutting down.
    router = APIRouter(dependencies=[Depends(require_open)], route_class=StrictJSONRoute)
    install_error_handlers(api)
    api.add_middleware(BodyLimit, max_bytes=max_body)

    @router.post(
        "/runs",
        status_code=201,
        response_model=RunBody,
        responses=errors(404, 413, 429),
        summary="Submit a run",
    )
    async def submit(request: SubmitRequest, response: Response) -> dict[str, Any]:
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
                description="Only runs whose id starts with this (case matters: ids are"
                " upper case).",
            ),
        ] = None,
        owner: Annotated[
            str | None,
            Query(pattern=OWNER_PATTERN, description="Only runs this owner submitted."),
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

    @router.get(
        "/runs/{run_id}", response_model=RunBody, responses=errors(404), summary="Get a run"
    )
    async def get_run(run_id: RunId) -> dict[str, Any]:
        """The run as stored: state, attempts, times, result or error."""
        return (await app.get(run_id)).to_dict()

    @router.get(
        "/runs/{run_id}/events",
        status_code=200,
        response_class=EventStreamResponse,
        responses={
            **errors(404),
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "The run's events as Server-Sent Events (see docs/http.md).",
            },
            204: {"description": "Nothing left to send: the run finished at or before the cursor."},
        },
        summary="Watch a run's events (SSE)",
    )
    async def watch(
        run_id: RunId,
        after: Annotated[
            int | None,
            Query(ge=0, le=MAX_SEQ, description="Start after this seq (0: the whole log)."),
        ] = None,
        last_event_id: Annotated[
            str | None,
            Header(
                alias="Last-Event-ID",
                pattern=SEQ_PATTERN,
                description=f"Resume after this seq (an integer from 0 to {MAX_SEQ}); wins"
                " over `after`.",
            ),
        ] = None,
        token: Annotated[
            str | None, Query(description="The bearer token, for clients that cannot set headers.")
        ] = None,
    ) -> Response:
        """Replay the log after the cursor, then stream live; the stream ends after the terminal
        event (or `shutdown`). Each event: `id: <seq>`, `event: <type>`, `data: <json>`."""
        return await open_stream(run_id, after, last_event_id)

    @router.post(
        "/runs/{run_id}/cancel",
        status_code=202,
        response_model=CancelAccepted,
        responses=errors(404, 409, 413),
        summary="Cancel a run",
    )
    async def cancel(
        run_id: RunId, request: Annotated[CancelRequest | None, Body()] = None
    ) -> dict[str, Any]:
        """Cancel a queued or running run: 202, then its log ends with `cancelled`.
        409 if it already finished."""
        reason = (request or CancelRequest()).reason
        if await app.cancel(run_id, reason):
            return {"id": run_id, "cancelling": True}
        run = await app.get(run_id)  # RunNotFound -> 404
        if not run.is_finished:
            # It is ending another way (its terminal write is under way): name how it ended.
            with suppress(TimeoutError):
                run = await app.wait(run_id, timeout=FINISHING_WAIT)
        raise RunFinished(run_id, run.state.value)

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
    async def retry(run_id: RunId, response: Response) -> dict[str, Any]:
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

    @router.get("/tasks", response_model=TaskList, responses=errors(), summary="List tasks")
    async def tasks() -> dict[str, Any]:
        """The registered tasks with their parameters (JSON Schema) and policy."""
        return {"tasks": [task.describe() for task in app.tasks.values()]}

    ScheduleName = Annotated[str, Path(description="The schedule's name.")]

    @router.get(
        "/schedules", response_model=ScheduleList, responses=errors(), summary="List schedules"
    )
    async def schedules() -> dict[str, Any]:
        """The periodic schedules: definition, paused or not, next and last tick, last run."""
        return {"schedules": await app.schedule_info()}

    @router.post(
        "/schedules/{name}/pause",
        response_model=ScheduleBody,
        responses=errors(404),
        summary="Pause a schedule",
    )
    async def pause_schedule(name: ScheduleName) -> dict[str, Any]:
        """Start no run at its ticks (for every process sharing the store) until resumed."""
        await app.pause_schedule(name)
        return (await app.schedule_info(name))[0]

    @router.post(
        "/schedules/{name}/resume",
        response_model=ScheduleBody,
        responses=errors(404),
        summary="Resume a schedule",
    )
    async def resume_schedule(name: ScheduleName) -> dict[str, Any]:
        """Start runs at its ticks again, from the next one."""
        await app.resume_schedule(name)
        return (await app.schedule_info(name))[0]

    @router.post(
        "/schedules/{name}/trigger",
        status_code=201,
        response_model=RunBody,
        responses=errors(404, 429),
        summary="Start a schedule's run now",
    )
    async def trigger_schedule(name: ScheduleName, response: Response) -> dict[str, Any]:
        """Start a run of the schedule now, out of turn (even while paused)."""
        run = await app.trigger_schedule(name)
        response.headers["Location"] = f"/runs/{run.id}"
        return run.to_dict()

    @api.get(
        "/health",
        response_model=Health,
        summary="Liveness",
        responses={503: {"model": Health, "description": "Shutting down, or the store is away."}},
    )
    async def health() -> JSONResponse:
        """200 while serving; 503 once shutdown began or while the store cannot be used (take
        the instance out of rotation); `reason` says why."""
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
            "streams": metrics.open_streams,
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
    )
    async def prometheus_metrics() -> Response:
        """Runs by task and state, durations, queue wait, events, watchers (Prometheus text)."""
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/changes",
        status_code=200,
        response_class=Response,
        responses={
            **errors(),
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "Run changes as Server-Sent Events (see docs/http.md).",
            },
        },
        summary="Watch every run's state changes (SSE)",
    )
    async def run_changes(
        token: Annotated[
            str | None, Query(description="The bearer token, for clients that cannot set headers.")
        ] = None,
    ) -> Response:
        """From now on: `counts` (runs by state), a `run` event `{"id", "seq", "type", "at",
        "state", "task"?, "attempt"?}` per lifecycle event of any run, `counts` again at most
        once a second while runs change, `reset` if this client fell too far behind (list the
        runs again), and `shutdown` before the stream ends when the server stops."""
        return changes.response(settings)

    api.include_router(router)
    api.include_router(
        stats_router(app, errors(), StrictJSONRoute), dependencies=[Depends(require_open)]
    )
    api.include_router(dashboard_router())
    api.include_router(api_docs_router())
    asgi: ASGIApp = TraceContext(EventStreamRoute(api, open_stream))
    if token:
        asgi = BearerTokenAuth(asgi, token)
    if allowed_hosts is not None and ANY_HOST not in allowed_hosts:
        asgi = HostCheck(asgi, allowed_hosts)
    return asgi
