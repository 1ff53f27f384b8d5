"""The shell built-in task: output lines as log events, exit code, process-group kill."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import taskcast
from taskcast.builtin import register_builtin_tasks
from taskcast.cli import _parser
from taskcast.cli.serve_command import build_app
from tests.engine.conftest import collect, wait_for_event


@pytest.fixture
def shell_app(app: taskcast.App) -> taskcast.App:
    register_builtin_tasks(app, shell=True)
    return app


async def exited(pid_fd: int) -> None:
    """Wait until the process behind ``pid_fd`` (a pidfd) has exited."""
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(pid_fd, gone.set_result, None)
    try:
        await gone
    finally:
        loop.remove_reader(pid_fd)


async def test_each_output_line_is_a_log_event_and_the_exit_code_is_the_result(
    shell_app: taskcast.App,
) -> None:
    run = await shell_app.submit("shell", cmd="echo one; echo two >&2; exit 3")
    events = await collect(shell_app, run.id)
    assert [e.data["message"] for e in events if e.type == "log"] == ["one", "two"]
    assert events[-1].type == "completed"
    assert events[-1].data["result"]["exit_code"] == 3


async def test_the_command_runs_in_cwd(shell_app: taskcast.App, tmp_path: Path) -> None:
    run = await shell_app.submit("shell", cmd="pwd", cwd=str(tmp_path))
    events = await collect(shell_app, run.id)
    assert [e.data["message"] for e in events if e.type == "log"] == [str(tmp_path)]


async def test_cancelling_kills_the_whole_process_group(shell_app: taskcast.App) -> None:
    for _ in range(5):  # a race with the process start: several times
        run = await shell_app.submit("shell", cmd="sleep 60 & echo $!; wait")
        line = await wait_for_event(shell_app, run.id, "log")
        sleep_pid = int(line.data["message"])
        pid_fd = os.pidfd_open(sleep_pid)
        try:
            assert await shell_app.cancel(run.id, reason="user")
            done = await shell_app.wait(run.id, timeout=10)
            assert done.state is taskcast.RunState.CANCELLED
            await asyncio.wait_for(exited(pid_fd), timeout=5)
        finally:
            os.close(pid_fd)


async def test_a_command_over_its_timeout_is_killed_and_fails(shell_app: taskcast.App) -> None:
    run = await shell_app.submit("shell", cmd="sleep 60 & echo $!; wait", timeout=2)
    line = await wait_for_event(shell_app, run.id, "log")
    pid_fd = os.pidfd_open(int(line.data["message"]))
    try:
        done = await shell_app.wait(run.id, timeout=10)
        await asyncio.wait_for(exited(pid_fd), timeout=5)
    finally:
        os.close(pid_fd)
    assert done.state is taskcast.RunState.FAILED
    assert done.error["message"] == "the command did not finish within 2 s"


async def test_shell_is_refused_with_a_hint_unless_enabled(app: taskcast.App) -> None:
    register_builtin_tasks(app)
    with pytest.raises(taskcast.UnknownTask, match="--enable-shell"):
        await app.submit("shell", cmd="true")


def test_serve_registers_http_fetch_always_and_shell_only_with_enable_shell() -> None:
    plain = build_app(_parser().parse_args(["serve", "--store", "memory://"]))
    enabled = build_app(_parser().parse_args(["serve", "--store", "memory://", "--enable-shell"]))
    assert "http.fetch" in plain.tasks and "shell" not in plain.tasks
    assert {"http.fetch", "shell", "demo.count"} <= set(enabled.tasks)
