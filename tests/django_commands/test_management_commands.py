"""``manage.py taskcast_serve`` and ``manage.py taskcast_worker`` of the test project, as real
processes (the project in tests/django_project, its database from pytest-django)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.db import connection

import taskcast
from taskcast.django import get_app

from ..conftest import redis_url_for
from ..django_project.shop.models import Batch, Item
from ..redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
MANAGE = REPO / "tests" / "django_project" / "manage.py"


@contextmanager
def command(
    tmp_path: Path, ready: str, *args: str, store: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``manage.py <args>`` until the block ends; yields the first match of ``ready`` in
    its output and the process."""
    log_path = tmp_path / f"{args[0]}.log"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
        "TASKCAST_DJANGO_DB": str(connection.settings_dict["NAME"]),
        "TASKCAST_STORE": store,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while (found := re.search(ready, log_path.read_text(errors="replace"))) is None:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[0]} did not start:\n{log_path.read_text()}")
                time.sleep(0.05)  # polling the log for startup, bounded by the deadline
            yield found.group(1), process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(10)


@pytest.mark.django_db(transaction=True)
def test_taskcast_serve_serves_the_projects_tasks_with_the_settings_token(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'taskcast.db'}"
    with command(
        tmp_path,
        r"taskcast serving on (http://127\.0\.0\.1:\d+)",
        "taskcast_serve",
        "--port",
        "0",
        store=store,
    ) as (url, process):
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/tasks").status_code == 401
            tasks = client.get("/tasks", headers={"Authorization": "Bearer service-token"}).json()
        # The built-in http.fetch is there as in `taskcast serve`; the demo tasks are not.
        assert {task["name"] for task in tasks["tasks"]} == {
            "import_rows",
            "count_items",
            "http.fetch",
        }
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0


@pytest.mark.django_db(transaction=True)
def test_taskcast_worker_runs_orm_tasks_submitted_by_another_process_on_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    store = redis_url_for(redis_server, visibility_timeout=3)
    batch = Batch.objects.create(name="b")
    Item.objects.bulk_create([Item(batch=batch, number=n) for n in range(3)])

    async def submit_and_wait() -> taskcast.Run:
        api_node = taskcast.App(store, worker=False)
        api_node.tasks.update(get_app().tasks)  # the project's task definitions
        async with api_node:
            run = await api_node.submit("count_items", batch=batch.pk)
            return await api_node.wait(run.id, timeout=60)

    with command(tmp_path, r"(taskcast worker \S+ ready)", "taskcast_worker", store=store) as (
        _,
        process,
    ):
        done = asyncio.run(submit_and_wait())
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    assert done.state is taskcast.RunState.COMPLETED and done.result == 3
