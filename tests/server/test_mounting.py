"""The API mounted in another ASGI application, below a prefix, the host starting the App."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

import taskcast
from taskcast.builtin import register_demo_tasks
from taskcast.server import create_app


async def test_mounted_below_a_prefix_every_route_and_stream_answers() -> None:
    app = taskcast.App()
    register_demo_tasks(app)

    @contextlib.asynccontextmanager
    async def lifespan(host: Starlette) -> AsyncIterator[None]:
        async with app:  # the host's lifespan; a mounted application's own does not run
            yield

    host = Starlette(routes=[Mount("/taskcast", create_app(app))], lifespan=lifespan)
    async with (
        lifespan(host),
        httpx.AsyncClient(transport=httpx.ASGITransport(host), base_url="http://test") as http,
    ):
        submitted = await http.post("/taskcast/runs", json={"task": "demo.count", "args": {"n": 2}})
        assert submitted.status_code == 201
        run = await app.wait(submitted.json()["id"], timeout=10)
        events = await http.get(f"/taskcast/runs/{run.id}/events")
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        assert "event: completed" in events.text
        assert (await http.get(f"/taskcast/runs/{run.id}")).json()["state"] == "completed"
        cancel = await http.post(f"/taskcast/runs/{run.id}/cancel")
        assert cancel.status_code == 409 and cancel.json()["state"] == "completed"
        assert (await http.post("/taskcast/runs/NOPE/cancel")).status_code == 404
        metrics = await http.get("/taskcast/metrics")
        assert 'taskcast_runs{state="completed",task="demo.count"} 1.0' in metrics.text
        assert (await http.get("/taskcast/")).status_code == 200  # the dashboard
