"""The README's FastAPI example, served by a real uvicorn in tests/fastapi."""

import os
from typing import Annotated

from fastapi import Depends, FastAPI

import taskcast

app = taskcast.App(os.environ.get("TASKCAST_STORE", "sqlite:///taskcast.db"), grace=0)


@app.task
async def greet(ctx: taskcast.Context, name: str) -> str:
    await ctx.progress(1, 1, f"greeting {name}")
    return f"hello {name}"


@app.task
async def wait_for_go(ctx: taskcast.Context) -> str:
    await ctx.emit("waiting")
    return str(await ctx.signal("go"))


tasks = taskcast.asgi(app, token=os.environ.get("TASKCAST_TOKEN"))
api = FastAPI(lifespan=tasks.lifespan)
api.mount("/taskcast", tasks)


@api.post("/greetings", dependencies=[Depends(tasks.require_token)])
async def greet_someone(
    name: str, taskcast_app: Annotated[taskcast.App, Depends(tasks.app_dependency)]
) -> dict[str, str]:
    run = await taskcast_app.submit("greet", name=name)
    return {"run": run.id, "events": f"/taskcast/runs/{run.id}/events"}
