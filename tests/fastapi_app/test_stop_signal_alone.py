"""Without a server's own handler, a stop signal still stops the App cleanly first."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, os, signal, sys
import taskcast

app = taskcast.App(sys.argv[1], grace=0, shutdown_timeout=1)

@app.task
async def wait_for_go(ctx: taskcast.Context) -> None:
    await ctx.emit("waiting")
    await ctx.signal("go")

async def main():
    tasks = taskcast.asgi(app)
    async with tasks.lifespan():
        run = await app.submit("wait_for_go")
        async for event in app.events(run.id):
            if event.type == "waiting":
                print(run.id, flush=True)
                os.kill(os.getpid(), signal.SIGTERM)  # nobody else handles it: SIG_DFL
                break
        await asyncio.Event().wait()  # ended by the signal's default action

asyncio.run(main())
"""


def test_a_sigterm_with_no_other_handler_shuts_the_app_down_then_ends_the_process(
    tmp_path: Path,
) -> None:
    database = tmp_path / "runs.db"
    script = tmp_path / "alone.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), f"sqlite:///{database}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr
    run_id = done.stdout.strip()
    with sqlite3.connect(database) as db:
        (state,) = db.execute("SELECT state FROM runs WHERE id = ?", [run_id]).fetchone()
    assert state == "interrupted"
