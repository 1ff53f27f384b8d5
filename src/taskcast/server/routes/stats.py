"""``GET /stats``: what happened over a window of time, for charts (see ``taskcast.stats``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ...app import App
from ...stats import DURATION_PATTERN, MAX_BUCKETS, Window, seconds_from_text
from ..bodies import StrictJSONRoute
from ..openapi import errors
from ..schemas import StatsBody
from ..state import app_of, require_open

router = APIRouter(dependencies=[Depends(require_open)], route_class=StrictJSONRoute)


@router.get("/stats", response_model=StatsBody, responses=errors(), summary="Activity over time")
async def stats(
    app: Annotated[App, Depends(app_of)],
    window: Annotated[
        str,
        Query(
            max_length=20,
            pattern=DURATION_PATTERN,
            description="How far back: 90s, 15m, 1h, 1d (at most 30d); a bare number is seconds.",
        ),
    ] = "1h",
    step: Annotated[
        str,
        Query(
            max_length=20,
            pattern=DURATION_PATTERN,
            description=f"Seconds per bucket, written the same way: at least 1s, at most the"
            f" window, and at most {MAX_BUCKETS} buckets in the window.",
        ),
    ] = "1m",
) -> dict[str, Any]:
    """Runs created, started and finished (by end state) per bucket, runs queued and
    running at the end of each bucket, and per task the p50, p95 and longest durations of
    the runs that finished in the window; with the whole store's counts by task and state.
    Buckets are aligned on multiples of `step`; the last one holds the present. Computed
    from the store: its cost follows the window's runs, not how many runs are stored.
    422 naming `query.window` or `query.step` for a value out of bounds."""
    seconds, every = seconds_from_text(window, "window"), seconds_from_text(step, "step")
    Window.ending_at(0.0, seconds, every, where="query.")  # the bounds, named as sent
    activity = await app.activity(seconds, every)
    counts: dict[str, dict[str, int]] = {}
    for (task, state), runs in sorted((await app.count_runs()).items()):
        counts.setdefault(task, {})[state.value] = runs
    return {"window": seconds, **activity.to_dict(), "counts": counts}
