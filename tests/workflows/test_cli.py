"""Workflows from the command line: submit --after, runs --parent (a real server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import taskcast
from tests.server.live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path, "--app", "tests.workflows.workflow_app:app") as running:
        yield running


def test_submit_after_waits_and_runs_parent_lists_the_children(server: LiveServer) -> None:
    parent = taskcast(server, "submit", "wf.fan", "n=2").stdout.strip()
    dependent = taskcast(
        server,
        "submit",
        "wf.square",
        "i=4",
        "--after",
        parent,
        "--after-policy",
        "always",
        "--watch",
    )
    assert dependent.returncode == 0, dependent.stderr
    assert "completed: 16" in dependent.stdout
    listed = taskcast(server, "runs", "--parent", parent)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("wf.square") == 2 and f"{parent}.0" in listed.stdout


def test_submit_after_an_unknown_run_is_refused_naming_it(server: LiveServer) -> None:
    result = taskcast(server, "submit", "wf.square", "i=1", "--after", "nope")
    assert result.returncode == 2
    assert "'nope'" in result.stderr
