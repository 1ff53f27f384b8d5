"""``taskcast submit --at/--in/--priority`` and ``taskcast schedules``, against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from taskcast.cli.start_times import parse_at, parse_in
from taskcast.errors import InvalidRequest

from ..server.live import LiveServer, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("server")
    args = ("--app", "tests.timeorder.sample_app:app", "--grace", "0", "--shutdown-timeout", "1")
    with live_server(directory, *args) as started:
        yield started


def taskcast(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "TASKCAST_URL": server.url}
    env.pop("TASKCAST_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "taskcast", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_submit_in_schedules_the_run_and_get_shows_when(server: LiveServer) -> None:
    done = taskcast(server, "submit", "demo.count", "n=0", "--in", "90s", "--priority", "6")
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    shown = taskcast(server, "get", run_id)
    assert re.search(r"state\s+scheduled", shown.stdout)
    assert re.search(r"run at\s+\S+ \S+ \(in 1m[0-9]{2}s\)", shown.stdout), shown.stdout
    assert re.search(r"priority\s+6", shown.stdout)
    assert taskcast(server, "cancel", run_id).returncode == 0


def test_submit_at_a_time_with_its_offset(server: LiveServer) -> None:
    when = (datetime.now().astimezone() + timedelta(hours=2)).isoformat()
    done = taskcast(server, "submit", "demo.count", "n=0", "--at", when, "--json")
    run = json.loads(done.stdout)
    assert run["state"] == "scheduled"
    assert run["run_at"] == pytest.approx(datetime.fromisoformat(when).timestamp(), abs=0.001)
    taskcast(server, "cancel", run["id"])


def test_submit_refuses_a_bad_duration_naming_the_option(server: LiveServer) -> None:
    done = taskcast(server, "submit", "demo.count", "--in", "soon")
    assert done.returncode == 2
    assert "--in takes a duration such as 90s" in done.stderr


def test_submit_refuses_a_priority_out_of_range_naming_it(server: LiveServer) -> None:
    done = taskcast(server, "submit", "demo.count", "--priority", "12")
    assert done.returncode == 2 and "priority" in done.stderr


def test_schedules_lists_pauses_resumes_and_triggers(server: LiveServer) -> None:
    listed = taskcast(server, "schedules")
    assert listed.returncode == 0
    assert "nightly" in listed.stdout and "0 3 * * * Europe/Paris" in listed.stdout
    assert "active" in listed.stdout
    assert taskcast(server, "schedules", "pause", "nightly").stdout.strip() == "paused nightly"
    assert "paused" in taskcast(server, "schedules").stdout
    assert taskcast(server, "schedules", "resume", "nightly").stdout.strip() == "resumed nightly"
    triggered = taskcast(server, "schedules", "trigger", "nightly", "--json")
    assert json.loads(triggered.stdout)["task"] == "sample.report"


def test_schedules_of_an_unknown_name_exits_2_naming_it(server: LiveServer) -> None:
    done = taskcast(server, "schedules", "pause", "weekly")
    assert done.returncode == 2 and "unknown schedule 'weekly'" in done.stderr


def test_in_and_at_are_read_the_way_a_person_writes_them() -> None:
    assert parse_in("90s") == 90 and parse_in("15m") == 900 and parse_in("2") == 2
    now = datetime(2030, 1, 1, 10, 0).astimezone()
    assert parse_at("09:30", now) == (now + timedelta(days=1)).replace(hour=9, minute=30)
    assert parse_at("11:00", now) == now.replace(hour=11)
    assert parse_at("2030-01-02T08:00:00+02:00").utcoffset() == timedelta(hours=2)
    assert parse_at("2030-01-02 08:00").tzinfo is not None  # local time, made explicit
    with pytest.raises(InvalidRequest, match="--at takes a time"):
        parse_at("tomorrow morning")


def test_the_schedules_table_is_empty_without_schedules(tmp_path: Path) -> None:
    with live_server(tmp_path) as plain:
        assert taskcast(plain, "schedules").stdout.strip() == "no schedules"
