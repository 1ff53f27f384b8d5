"""http.fetch reaches public addresses only, unless the server allows more (SSRF guard): the
check is on the addresses a host resolves to, again on every redirect, and the connection goes
to the address checked."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import taskcast
from taskcast.builtin import FetchPolicy, fetch_guard, register_http_fetch
from tests.server.live import live_server

from .slow_server import Reply, SlowServer, slow_server


@pytest.fixture
async def server() -> AsyncIterator[SlowServer]:
    async with slow_server() as running:
        yield running


def port_of(server: SlowServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def fetch(app: taskcast.App, url: str) -> taskcast.Run:
    return await app.wait((await app.submit("http.fetch", url=url)).id, timeout=10)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd00:ec2::254", "a private address"),  # AWS's metadata service over IPv6
        ("169.254.169.254", "a link-local address (where cloud metadata services answer)"),
        ("fe80::1", "a link-local address (where cloud metadata services answer)"),
        ("100.100.100.200", "not a public address"),  # Alibaba's metadata service
        ("0.0.0.0", "the unspecified address (this machine)"),
        ("224.0.0.1", "not a public address"),
        ("::ffff:127.0.0.1", "a loopback address (127.0.0.1, written as IPv6)"),
        ("64:ff9b::a00:1", "a private address (10.0.0.1, written as IPv6)"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_which_addresses_are_refused_and_why(address: str, reason: str | None) -> None:
    assert fetch_guard.refusal(ipaddress.ip_address(address)) == reason


async def test_a_loopback_server_is_refused_by_default_and_never_contacted(
    app: taskcast.App, server: SlowServer
) -> None:
    register_http_fetch(app)
    done = await fetch(app, f"{server.url}/secret")
    assert done.state is taskcast.RunState.FAILED
    assert done.error["type"] == "AddressNotAllowed"
    assert "resolves to 127.0.0.1, a loopback address" in done.error["message"]
    assert "--fetch-allow 127.0.0.1" in done.error["message"]
    assert server.requests == []


async def test_a_name_is_checked_by_the_addresses_it_resolves_to(
    app: taskcast.App, server: SlowServer
) -> None:
    register_http_fetch(app, FetchPolicy.allowing(["127.0.0.1"]))  # the address, not the name
    done = await fetch(app, f"http://localhost:{port_of(server)}/")
    assert done.error["type"] == "AddressNotAllowed"
    assert "'localhost'" in done.error["message"] and "a loopback address" in done.error["message"]
    assert server.requests == []


async def test_a_redirect_to_a_refused_address_is_refused(
    app: taskcast.App, server: SlowServer
) -> None:
    register_http_fetch(app, FetchPolicy.allowing(["127.0.0.1"]))
    server.reply = Reply(status=302, headers={"Location": f"http://localhost:{port_of(server)}/"})
    done = await fetch(app, f"{server.url}/start")
    assert done.error["type"] == "AddressNotAllowed" and "'localhost'" in done.error["message"]
    assert server.requests == ["GET /start HTTP/1.1"]  # the redirect was not followed


async def test_allowed_hosts_are_fetched_across_redirects(
    app: taskcast.App, server: SlowServer
) -> None:
    register_http_fetch(app, FetchPolicy.allowing(["LOCALHOST.", "127.0.0.1"]))
    async with slow_server() as target:
        target.reply = Reply(headers={"Content-Type": "text/plain"}, body=b"here")
        server.reply = Reply(status=302, headers={"Location": f"{target.url}/next"})
        done = await fetch(app, f"http://localhost:{port_of(server)}/start")
    assert (done.state, done.result["body"]) == ("completed", "here")
    assert server.requests == ["GET /start HTTP/1.1"] and target.requests == ["GET /next HTTP/1.1"]


async def test_allow_private_reaches_any_address(app: taskcast.App, server: SlowServer) -> None:
    register_http_fetch(app, FetchPolicy.allowing(private=True))
    server.reply = Reply(headers={"Content-Type": "text/plain"}, body=b"inside")
    done = await fetch(app, server.url)
    assert (done.state, done.result["body"]) == ("completed", "inside")


async def test_the_connection_goes_to_the_checked_address_and_still_names_the_host(
    app: taskcast.App, server: SlowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Public addresses cannot be reached from here: let loopback pass the check instead, to see
    # the pinned request (sent to 127.0.0.1 itself) keep the name in its Host header.
    monkeypatch.setattr(fetch_guard, "refusal", lambda address: None)
    register_http_fetch(app)
    server.reply = Reply(headers={"Content-Type": "text/plain"}, body=b"pinned")
    done = await fetch(app, f"http://localhost:{port_of(server)}/x")
    assert (done.state, done.result["body"]) == ("completed", "pinned")
    assert done.result["url"] == f"http://localhost:{port_of(server)}/x"
    assert server.hosts == [f"localhost:{port_of(server)}"]


async def test_a_json_body_no_store_could_keep_comes_back_as_its_text(
    app: taskcast.App, server: SlowServer
) -> None:
    register_http_fetch(app, FetchPolicy.allowing(["127.0.0.1"]))
    body = b'{"a": "\\ud800", "b": NaN}'
    server.reply = Reply(headers={"Content-Type": "application/json"}, body=body)
    done = await fetch(app, server.url)
    assert (done.state, done.result["body"]) == ("completed", body.decode())
    assert (await app.runs())[0].result == done.result  # and it lists


def _fetch_over_http(url: str, target: str) -> dict[str, object]:
    with httpx.Client(base_url=url, timeout=10) as api:
        run = api.post("/runs", json={"task": "http.fetch", "args": {"url": target}}).json()
        deadline = time.monotonic() + 15
        while (found := api.get(f"/runs/{run['id']}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling another process's run, bounded by the deadline
        return dict(found)


@pytest.mark.parametrize(
    ("args", "variables", "allowed"),
    [
        ([], {}, False),
        (["--fetch-allow", "127.0.0.1"], {}, True),
        ([], {"TASKCAST_FETCH_ALLOW": "example.org, 127.0.0.1"}, True),
        (["--fetch-allow-private"], {}, True),
        ([], {"TASKCAST_FETCH_ALLOW_PRIVATE": "1"}, True),
    ],
    ids=["default", "flag", "variable", "private-flag", "private-variable"],
)
def test_serve_lets_http_fetch_reach_what_its_options_allow(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    variables: dict[str, str],
    allowed: bool,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with live_server(tmp_path, *args) as server:
        run = _fetch_over_http(server.url, f"{server.url}/health")  # the server itself
    if allowed:
        assert run["state"] == "completed" and run["result"]["status"] == 200  # type: ignore[index]
    else:
        assert run["state"] == "failed"
        assert run["error"]["type"] == "AddressNotAllowed"  # type: ignore[index]
