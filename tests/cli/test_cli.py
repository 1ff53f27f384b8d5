"""The taskcast command line, run as a user runs it: a subprocess against a real server."""

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..server.live import LiveServer, live_server


def taskcast(
    server: LiveServer | None, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COLUMNS": "200",
        "TASKCAST_URL": server.url if server else "http://127.0.0.1:9",
    }
    env.pop("TASKCAST_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "taskcast", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_submit_prints_the_run_id(server: LiveServer) -> None:
    result = taskcast(server, "submit", "demo.count", "n=0")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    with httpx.Client(base_url=server.url) as api:
        assert api.get(f"/runs/{run_id}").json()["args"] == {"n": 0}


def test_submit_watch_shows_progress_then_the_result_and_exits_0(server: LiveServer) -> None:
    result = taskcast(server, "submit", "demo.count", "n=3", "delay=0.01", "--watch")
    assert result.returncode == 0, result.stderr
    assert 'completed: {"counted": 3}' in result.stdout


def test_watch_a_failing_run_shows_the_error_and_exits_1(server: LiveServer) -> None:
    result = taskcast(server, "submit", "demo.fail", "message=boom", "--watch")
    assert result.returncode == 1
    assert "failed: DemoFailure: boom" in result.stdout


def test_watch_a_run_that_is_cancelled_exits_1(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as api:
        run_id = api.post("/runs", json={"task": "demo.wait"}).json()["id"]
        env = {**os.environ, "COLUMNS": "200", "TASKCAST_URL": server.url}
        with subprocess.Popen(
            [sys.executable, "-m", "taskcast", "watch", run_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as watcher:
            deadline = time.monotonic() + 20
            while api.get("/health").json()["streams"] == 0:  # wait for the CLI to connect
                assert time.monotonic() < deadline and watcher.poll() is None
                time.sleep(0.05)
            assert taskcast(server, "cancel", run_id).returncode == 0
            out, err = watcher.communicate(timeout=20)
    assert watcher.returncode == 1, err
    assert "cancelled" in out


def test_watch_a_finished_run_shows_its_outcome(server: LiveServer) -> None:
    run_id = taskcast(server, "submit", "demo.count", "n=1", "delay=0", "--watch").stdout.split()[0]
    result = taskcast(server, "watch", run_id)
    assert result.returncode == 0 and "completed" in result.stdout


def test_runs_lists_them_in_a_table(server: LiveServer) -> None:
    run_id = taskcast(server, "submit", "demo.count", "n=0").stdout.strip()
    result = taskcast(server, "runs")
    assert result.returncode == 0
    assert run_id in result.stdout and "demo.count" in result.stdout


def test_signal_delivers_data(server: LiveServer) -> None:
    run_id = taskcast(server, "submit", "demo.wait").stdout.strip()
    result = taskcast(server, "signal", run_id, "continue", "--data", '{"ok": true}')
    assert result.returncode == 0, result.stderr
    watched = taskcast(server, "watch", run_id)
    assert watched.returncode == 0 and 'completed: {"ok": true}' in watched.stdout


def test_errors_read_as_sentences_not_tracebacks(server: LiveServer) -> None:
    unknown = taskcast(server, "cancel", "NOPE")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "taskcast cancel: no run with id 'NOPE'"
    bad = taskcast(server, "submit", "demo.count", "n=lots")
    assert bad.returncode == 2 and "n: Input should be a valid integer" in bad.stderr
    malformed = taskcast(server, "submit", "demo.count", "n")
    assert malformed.returncode == 2 and "name=value" in malformed.stderr
    for result in (unknown, bad, malformed):
        assert "Traceback" not in result.stderr


def test_an_unreachable_server_is_explained(server: LiveServer) -> None:
    result = taskcast(None, "runs")
    assert result.returncode == 3
    assert "cannot reach taskcast at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_explains_a_port_in_use(server: LiveServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    result = taskcast(None, "serve", "--port", port, "--store", "memory://")
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_watch_an_unknown_run_says_so_without_a_progress_bar(server: LiveServer) -> None:
    result = taskcast(server, "watch", "NOPE")
    assert result.returncode == 2
    assert result.stderr.strip() == "taskcast watch: no run with id 'NOPE'"
    assert result.stdout == ""


def test_watch_explains_a_server_shutdown_and_exits_3(tmp_path: Path) -> None:
    with (
        live_server(tmp_path, "--grace", "0", "--shutdown-timeout", "1") as server,
        httpx.Client(base_url=server.url, timeout=10) as api,
    ):
        run_id = api.post("/runs", json={"task": "demo.wait"}).json()["id"]
        env = {**os.environ, "COLUMNS": "200", "TASKCAST_URL": server.url}
        with subprocess.Popen(
            [sys.executable, "-m", "taskcast", "watch", run_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as watcher:
            deadline = time.monotonic() + 20
            while api.get("/health").json()["streams"] == 0:  # wait for the CLI to connect
                assert time.monotonic() < deadline and watcher.poll() is None
                time.sleep(0.05)
            server.signal(signal.SIGTERM)
            out, err = watcher.communicate(timeout=20)
        assert server.wait(10) == 0
    assert watcher.returncode == 3, err
    assert f"taskcast watch {run_id}" in out


def test_watch_follows_a_run_resumed_after_a_restart_to_its_end(tmp_path: Path) -> None:
    with (
        live_server(tmp_path, "--grace", "0", "--shutdown-timeout", "1", name="first") as server,
        httpx.Client(base_url=server.url, timeout=10) as api,
    ):
        run_id = api.post(
            "/runs", json={"task": "demo.count", "args": {"n": 10, "delay": 0.05}}
        ).json()["id"]
        with api.stream("GET", f"/runs/{run_id}/events") as stream:
            for line in stream.iter_lines():  # wait (on the stream) for the first progress
                if line == "event: progress":
                    break
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
    with live_server(tmp_path, name="second") as server:
        env = {**os.environ, "COLUMNS": "200", "TASKCAST_URL": server.url}
        result = subprocess.run(
            [sys.executable, "-m", "taskcast", "watch", run_id],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    # The replayed `shutdown` of the first server is shown, not taken for a live stop.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server stopped" in result.stdout
    assert 'completed: {"counted": 10}' in result.stdout


def taskcast_at(server: LiveServer, width: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(width), "TASKCAST_URL": server.url}
    env.pop("TASKCAST_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "taskcast", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_runs_fits_80_columns_with_relative_times_and_no_cut_cell(server: LiveServer) -> None:
    finished = taskcast(server, "submit", "demo.count", "n=0", "--watch").stdout.split()[0]
    waiting = taskcast(server, "submit", "demo.wait").stdout.strip()
    result = taskcast_at(server, 80, "runs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert "…" not in result.stdout and "ago" not in lines[0]
    [row] = [line for line in lines if waiting in line]
    assert row.split()[1:4] == ["demo.wait", "running", "1/1"]
    assert row.endswith("+")  # running for so long, still going
    assert any(finished in line and "completed" in line for line in lines)


def test_a_narrow_terminal_gets_short_ids_that_every_command_resolves(
    server: LiveServer,
) -> None:
    run_id = taskcast(server, "submit", "demo.wait").stdout.strip()
    table = taskcast_at(server, 60, "runs").stdout
    assert all(len(line) <= 60 for line in table.splitlines()), table
    [short] = [word for word in table.split() if run_id.startswith(word) and word != run_id]
    assert len(short) >= 12
    shown = taskcast(server, "get", short.lower())
    assert shown.returncode == 0 and f"id        {run_id}" in shown.stdout
    signalled = taskcast(server, "signal", short, "continue", "--data", "7")
    assert signalled.returncode == 0 and run_id in signalled.stdout
    watched = taskcast(server, "watch", short)
    assert watched.returncode == 0 and "completed: 7" in watched.stdout
    again = taskcast(server, "cancel", short)
    assert again.returncode == 2 and "already finished (completed)" in again.stderr


def test_an_ambiguous_prefix_is_refused_naming_two_runs(server: LiveServer) -> None:
    first = taskcast(server, "submit", "demo.count", "n=0").stdout.strip()
    taskcast(server, "submit", "demo.count", "n=0")
    result = taskcast(server, "get", first[:2])
    assert result.returncode == 2
    assert "is the start of several run ids" in result.stderr and "type more" in result.stderr


def test_every_client_verb_speaks_json_for_scripts(server: LiveServer) -> None:
    submitted = taskcast(server, "submit", "demo.wait", "--json")
    run = json.loads(submitted.stdout)
    assert run["task"] == "demo.wait" and run["state"] in ("queued", "running")
    got = json.loads(taskcast(server, "get", run["id"], "--json").stdout)
    assert got["id"] == run["id"] and got["args"] == {}
    listed = json.loads(taskcast(server, "runs", "--json").stdout)
    assert [item["id"] for item in listed] == [run["id"]]
    sent = json.loads(taskcast(server, "signal", run["id"], "continue", "--json").stdout)
    assert sent == {"id": run["id"], "signal": "continue", "data": None, "sent": True}
    watched = taskcast(server, "watch", run["id"], "--json")
    assert watched.returncode == 0
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "queued" and events[-1]["type"] == "completed"
    finished = taskcast(server, "cancel", run["id"], "--json")
    assert finished.returncode == 2 and finished.stdout == ""
    assert json.loads(finished.stderr)["error"]["code"] == "run_finished"


def test_submit_watch_json_prints_the_run_then_its_events_as_json_lines(
    server: LiveServer,
) -> None:
    result = taskcast(server, "submit", "demo.fail", "--watch", "--json")
    assert result.returncode == 1
    [run, *events] = [json.loads(line) for line in result.stdout.splitlines()]
    assert run["task"] == "demo.fail"
    assert {event["run_id"] for event in events} == {run["id"]}
    assert events[-1]["type"] == "failed"


def test_cancel_json_says_the_run_is_cancelling(server: LiveServer) -> None:
    run_id = taskcast(server, "submit", "demo.wait").stdout.strip()
    result = taskcast(server, "cancel", run_id, "--json", "--reason", "script")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"id": run_id, "cancelling": True, "reason": "script"}


def test_version_is_the_package_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taskcast", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"taskcast {importlib.metadata.version('taskcast')}"


def test_retry_starts_a_failed_run_again_by_its_prefix_and_watches_it(server: LiveServer) -> None:
    failed = taskcast(server, "submit", "demo.fail", "message=once", "--watch")
    assert failed.returncode == 1
    [old] = json.loads(taskcast(server, "runs", "--json").stdout)
    result = taskcast(server, "retry", old["id"][:20].lower(), "--watch")
    assert result.returncode == 1 and "once" in result.stdout  # it failed the same way again
    new_id = result.stdout.split()[0]
    shown = taskcast(server, "get", new_id)
    assert f"retry of  {old['id']}" in shown.stdout


def test_retry_json_prints_the_new_run_and_refuses_a_completed_one(server: LiveServer) -> None:
    done = json.loads(
        taskcast(server, "submit", "demo.count", "n=0", "--watch", "--json").stdout.splitlines()[0]
    )
    refused = taskcast(server, "retry", done["id"], "--json")
    assert refused.returncode == 2 and refused.stdout == ""
    assert json.loads(refused.stderr)["error"]["code"] == "not_retryable"
    failed = json.loads(taskcast(server, "submit", "demo.fail", "--json").stdout)
    taskcast(server, "watch", failed["id"])
    retried = json.loads(taskcast(server, "retry", failed["id"], "--json").stdout)
    assert (retried["task"], retried["retry_of"]) == ("demo.fail", failed["id"])


def test_serve_on_uvloop_runs_a_run_to_its_end_and_stops_cleanly(tmp_path: Path) -> None:
    with live_server(tmp_path, "--loop", "uvloop", "--grace", "0") as server:
        result = taskcast(server, "submit", "--watch", "demo.count", "n=3")
        assert result.returncode == 0, result.stderr
        assert "completed" in result.stdout
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0
    assert "event loop: uvloop" in server.output()
    assert "taskcast stopped" in server.output()


def test_an_unknown_loop_is_refused_naming_the_choices() -> None:
    result = taskcast(None, "serve", "--loop", "trio")
    assert result.returncode != 0
    assert "--loop" in result.stderr and "uvloop" in result.stderr
