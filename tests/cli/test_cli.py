"""The taskcast command line, run as a user runs it: a subprocess against a real server."""

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
