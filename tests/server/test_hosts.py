"""Which Host names a server answers (against DNS rebinding), and the warnings at start when it
is open to more than this machine's users."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskcast.server.hosts import ANY_HOST, LOOPBACK_NAMES, allowed_hosts_for

from .live import LiveServer, live_server

NO_TOKEN_WARNING = "without a token: anyone who can reach this address"
SHELL_WARNING = "--enable-shell without --token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path) as started:
        yield started


def test_a_loopback_server_answers_requests_that_name_it_by_a_loopback_name(
    server: LiveServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as api:
        for host in ("127.0.0.1", "localhost", "LocalHost", "[::1]", "dashboard.localhost"):
            for named in (host, f"{host}:{server.port}"):
                assert api.get("/runs", headers={"Host": named}).status_code == 200, named


def test_a_loopback_server_refuses_other_names_as_a_rebinding_page_would_send_them(
    server: LiveServer,
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as api:
        for path in ("/runs", "/", "/runs/X/events", "/openapi.json"):
            refused = api.get(path, headers={"Host": f"attacker.example:{server.port}"})
            assert refused.status_code == 400, path
            body = refused.json()
            assert body["error"] == "invalid_host" and body["host"] == (
                f"attacker.example:{server.port}"
            )
            assert "--allowed-host" in body["message"]
        before = len(api.get("/runs").json()["runs"])
        submit = {"task": "demo.count", "args": {"n": 1}}
        refused = api.post("/runs", json=submit, headers={"Host": "attacker.example"})
        assert refused.status_code == 400
        assert len(api.get("/runs").json()["runs"]) == before  # nothing was submitted


def test_health_answers_whatever_the_host(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as api:
        assert api.get("/health", headers={"Host": "10.1.2.3:8000"}).json()["status"] == "ok"


@pytest.mark.parametrize("source", ["flag", "environment"])
def test_allowed_host_adds_names_from_the_flag_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "flag":
        args = ["--allowed-host", "tasks.internal", "--allowed-host", "*.example.org"]
    else:
        args = []
        monkeypatch.setenv("TASKCAST_ALLOWED_HOST", "tasks.internal, *.example.org")
    with (
        live_server(tmp_path, *args) as server,
        httpx.Client(base_url=server.url, timeout=10) as api,
    ):
        for host in ("tasks.internal", "a.example.org", "localhost"):
            assert api.get("/runs", headers={"Host": host}).status_code == 200, host
        assert api.get("/runs", headers={"Host": "tasks.internal.evil"}).status_code == 400


def test_a_server_beyond_loopback_answers_any_name_and_warns_without_a_token(
    tmp_path: Path,
) -> None:
    with live_server(tmp_path, "--host", "0.0.0.0") as server:
        assert NO_TOKEN_WARNING in server.output()
        with httpx.Client(base_url=server.url, timeout=10) as api:
            assert api.get("/runs", headers={"Host": "tasks.example.com"}).status_code == 200


def test_a_server_beyond_loopback_with_a_token_does_not_warn(tmp_path: Path) -> None:
    with live_server(tmp_path, "--host", "0.0.0.0", "--token", "s3cret") as server:
        assert "taskcast serving on" in server.output()
        assert NO_TOKEN_WARNING not in server.output()


def test_a_loopback_server_without_a_token_does_not_warn(server: LiveServer) -> None:
    assert "taskcast serving on" in server.output()
    assert NO_TOKEN_WARNING not in server.output() and SHELL_WARNING not in server.output()


def test_a_unix_socket_server_answers_any_name(tmp_path: Path) -> None:
    # No browser connects to a socket file; a proxy in front sends the public name.
    with tempfile.TemporaryDirectory(prefix="tc") as short:
        path = str(Path(short) / "taskcast.sock")
        with (
            live_server(tmp_path, "--uds", path) as server,
            httpx.Client(
                transport=httpx.HTTPTransport(uds=path), base_url="http://tasks.example.com"
            ) as api,
        ):
            assert api.get("/runs").status_code == 200
            assert NO_TOKEN_WARNING not in server.output()


def test_enable_shell_without_a_token_warns_at_start(tmp_path: Path) -> None:
    with live_server(tmp_path, "--enable-shell") as server:
        assert SHELL_WARNING in server.output()
    with live_server(tmp_path, "--enable-shell", "--token", "s3cret", name="second") as server:
        assert SHELL_WARNING not in server.output()


def _bound(family: socket.AddressFamily, address: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((address, 0))
    return sock


def test_the_default_names_follow_where_the_server_listens() -> None:
    with _bound(socket.AF_INET, "127.0.0.1") as loopback:
        assert allowed_hosts_for(loopback) == [*LOOPBACK_NAMES]  # 127.0.0.1 is among them
        assert allowed_hosts_for(loopback, ["Tasks.Internal"])[-1] == "tasks.internal"
    with _bound(socket.AF_INET, "0.0.0.0") as everywhere:
        assert allowed_hosts_for(everywhere) == [ANY_HOST]
        assert allowed_hosts_for(everywhere, ["tasks.internal"]) == [
            *LOOPBACK_NAMES,
            "0.0.0.0",
            "tasks.internal",
        ]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        assert allowed_hosts_for(unix) == [ANY_HOST]
