"""How an App sets up garbage collection for its process (``app.suit_garbage_collection``).

Each case runs in a fresh interpreter: the test kit's leak guard freezes the heap during every
test, which is exactly the case where an App must leave freezing alone."""

import json
import subprocess
import sys

SCRIPT = """
import asyncio, gc, json, sys
import taskcast

if sys.argv[1] == "own":
    gc.set_threshold(5000, 20, 30)
if sys.argv[1] == "frozen":
    gc.freeze()

async def main():
    before = gc.get_freeze_count()
    app = taskcast.App("memory://")

    @app.task(name="noop")
    async def noop() -> None:
        pass

    async with app:
        run = await app.submit("noop")
        await app.wait(run.id, timeout=30)
        print(json.dumps({"before": before, "frozen": gc.get_freeze_count(),
                          "threshold": gc.get_threshold()}))

asyncio.run(main())
"""


def started(case: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, case], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_first_app_freezes_what_lives_at_start_and_collects_the_young_less_often() -> None:
    result = started("default")
    assert result["before"] == 0
    assert isinstance(result["frozen"], int) and result["frozen"] > 5000
    assert result["threshold"] == [10_000, 10, 10]


def test_thresholds_the_process_chose_are_kept() -> None:
    assert started("own")["threshold"] == [5000, 20, 30]


def test_a_process_that_froze_objects_itself_is_left_to_it() -> None:
    result = started("frozen")
    before, frozen = result["before"], result["frozen"]
    assert isinstance(before, int) and isinstance(frozen, int) and before > 5000
    assert frozen - before < 1000  # not the thousands the App and the loop brought since
