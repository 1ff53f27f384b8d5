"""``/tasks`` and ``/schedules``: what the App can run, and its periodic schedules."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from ...app import App
from ..bodies import StrictJSONRoute
from ..openapi import errors
from ..schemas import RunBody, ScheduleBody, ScheduleList, TaskList
from ..state import app_of, require_open

TheApp = Annotated[App, Depends(app_of)]
ScheduleName = Annotated[str, Path(description="The schedule's name.")]

router = APIRouter(dependencies=[Depends(require_open)], route_class=StrictJSONRoute)


@router.get("/tasks", response_model=TaskList, responses=errors(), summary="List tasks")
async def tasks(app: TheApp) -> dict[str, Any]:
    """The registered tasks with their parameters (JSON Schema) and policy."""
    return {"tasks": [task.describe() for task in app.tasks.values()]}


@router.get("/schedules", response_model=ScheduleList, responses=errors(), summary="List schedules")
async def schedules(app: TheApp) -> dict[str, Any]:
    """The periodic schedules: definition, paused or not, next and last tick, last run."""
    return {"schedules": await app.schedule_info()}


@router.post(
    "/schedules/{name}/pause",
    response_model=ScheduleBody,
    responses=errors(404),
    summary="Pause a schedule",
)
async def pause_schedule(app: TheApp, name: ScheduleName) -> dict[str, Any]:
    """Start no run at its ticks (for every process sharing the store) until resumed."""
    await app.pause_schedule(name)
    return (await app.schedule_info(name))[0]


@router.post(
    "/schedules/{name}/resume",
    response_model=ScheduleBody,
    responses=errors(404),
    summary="Resume a schedule",
)
async def resume_schedule(app: TheApp, name: ScheduleName) -> dict[str, Any]:
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
async def trigger_schedule(app: TheApp, name: ScheduleName, response: Response) -> dict[str, Any]:
    """Start a run of the schedule now, out of turn (even while paused)."""
    run = await app.trigger_schedule(name)
    response.headers["Location"] = f"/runs/{run.id}"
    return run.to_dict()
