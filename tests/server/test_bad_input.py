"""Bad input at the HTTP door: refused with a 4xx naming the field, and nothing changes.

Bodies are raw bytes here (not ``json=``): Python's encoder would refuse to write NaN and lone
surrogates, and the point is what the server does with bodies that hold them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .live import LiveServer

UNKEEPABLE = [
    pytest.param(b'"caf\\ud800"', "holds a lone surrogate", id="lone-surrogate"),
    pytest.param(b'{"k": ["\\udfff"]}', "holds a lone surrogate", id="nested-surrogate"),
    pytest.param(b"NaN", "NaN is not a number JSON can hold", id="nan"),
    pytest.param(b"Infinity", "Infinity is not a number", id="infinity"),
    pytest.param(b"-Infinity", "-Infinity is not a number", id="minus-infinity"),
    pytest.param(b"1e400", "1e400 is not a number", id="overflow"),
    pytest.param(b"1" * 5000, "is not a number JSON can hold", id="huge-int"),
]


@pytest.fixture
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, timeout=10, headers={"content-type": "application/json"}
    ) as client:
        yield client


def problems(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    found: list[dict[str, str]] = body["problems"]
    return found


@pytest.mark.parametrize(("value", "problem"), UNKEEPABLE)
def test_a_submit_holding_what_no_store_can_keep_is_refused_and_nothing_is_stored(
    api: httpx.Client, value: bytes, problem: str
) -> None:
    body = b'{"task": "demo.fail", "args": {"message": ' + value + b"}}"
    (found,) = problems(api.post("/runs", content=body))
    assert found["param"] == "body" and problem in found["problem"]
    assert "args.message" in found["problem"]  # where it is
    assert api.get("/runs").json()["runs"] == []
    # ...and the server goes on: the same task with a good value runs and lists.
    good = api.post("/runs", content=b'{"task": "demo.fail", "args": {"message": "x"}}')
    assert good.status_code == 201
    assert [run["id"] for run in api.get("/runs").json()["runs"]] == [good.json()["id"]]


@pytest.mark.parametrize(("value", "problem"), UNKEEPABLE)
def test_signal_data_holding_what_no_store_can_keep_is_refused_and_not_logged(
    api: httpx.Client, value: bytes, problem: str
) -> None:
    run = api.post("/runs", content=b'{"task": "demo.wait"}').json()
    (found,) = problems(api.post(f"/runs/{run['id']}/signals/continue", content=value))
    assert found["param"] == "body" and problem in found["problem"]
    api.post(f"/runs/{run['id']}/cancel")
    with api.stream("GET", f"/runs/{run['id']}/events") as stream:
        frames = stream.read().decode()
    assert "event: signal" not in frames and "event: cancelled" in frames


@pytest.mark.parametrize(
    "timeout", [b"0", b"-1", b"1e400", b"Infinity", b"NaN", b"2592001", b'"soon"', b"true"]
)
def test_a_submit_timeout_is_finite_positive_and_at_most_30_days(
    api: httpx.Client, timeout: bytes
) -> None:
    body = b'{"task": "demo.count", "args": {"n": 1, "delay": 0}, "timeout": ' + timeout + b"}"
    params = {p["param"] for p in problems(api.post("/runs", content=body))}
    assert params in ({"body.timeout"}, {"body"})  # body: a number the parser already refused
    assert api.get("/runs").json()["runs"] == []
    ok = b'{"task": "demo.count", "args": {"n": 1, "delay": 0}, "timeout": 2592000}'
    assert api.post("/runs", content=ok).json()["timeout"] == 2592000


@pytest.mark.parametrize("field", ["max_attempts", "priority"])
@pytest.mark.parametrize("value", [b'"5"', b"true", b"5.5", b"1e400"])
def test_a_whole_number_field_takes_no_text_booleans_or_fractions(
    api: httpx.Client, field: str, value: bytes
) -> None:
    body = b'{"task": "demo.count", "args": {"n": 0}, "%s": %s}' % (field.encode(), value)
    params = {p["param"] for p in problems(api.post("/runs", content=body))}
    assert params in ({f"body.{field}"}, {"body"})  # body: a number the parser already refused
    assert api.get("/runs").json()["runs"] == []


@pytest.mark.parametrize("field", ["max_attempts", "priority"])
def test_a_whole_number_written_with_a_zero_fraction_is_that_number(
    api: httpx.Client, field: str
) -> None:
    # JSON Schema's "integer" admits 5.0, so a client generated from /openapi.json may send it.
    body = b'{"task": "demo.count", "args": {"n": 0}, "%s": 5.0}' % field.encode()
    answer = api.post("/runs", content=body)
    assert answer.status_code == 201, answer.text
    assert api.get(f"/runs/{answer.json()['id']}").json()[field] == 5


def test_a_cancel_reason_with_a_lone_surrogate_is_refused(api: httpx.Client) -> None:
    run = api.post("/runs", content=b'{"task": "demo.wait"}').json()
    (found,) = problems(api.post(f"/runs/{run['id']}/cancel", content=b'{"reason": "\\ud800"}'))
    assert found["param"] == "body" and "reason" in found["problem"]
    assert api.get(f"/runs/{run['id']}").json()["state"] in ("queued", "running")
    assert api.post(f"/runs/{run['id']}/cancel").status_code == 202


NOT_CURSORS = [
    pytest.param("\u00b2", id="superscript-two"),  # str.isdigit() says yes; int() says no
    pytest.param("\u0661", id="arabic-indic-one"),  # int() reads it: still not ASCII
    pytest.param("-1", id="negative"),
    pytest.param("1.0", id="not-an-integer"),
    pytest.param("1" * 4301, id="4301-digits"),
    pytest.param(str(2**63), id="2-to-the-63"),
    pytest.param("0x10", id="hexadecimal"),
]


@pytest.mark.parametrize("cursor", NOT_CURSORS)
def test_a_cursor_that_is_not_ascii_digits_below_2_63_is_refused_naming_it(
    api: httpx.Client, cursor: str
) -> None:
    run = api.post("/runs", content=b'{"task": "demo.wait"}').json()
    path = f"/runs/{run['id']}/events"
    (found,) = problems(api.get(path, params={"after": cursor}))
    assert found["param"] == "query.after" and "ASCII digits" in found["problem"]
    if cursor.isascii():  # a header value is bytes: send the others as UTF-8
        headers = {"Last-Event-ID": cursor}
    else:
        headers = {"Last-Event-ID": cursor.encode()}  # type: ignore[dict-item]
    (found,) = problems(api.get(path, headers=headers))
    assert found["param"] == "header.Last-Event-ID" and "ASCII digits" in found["problem"]
    api.post(f"/runs/{run['id']}/cancel")


def test_the_largest_cursor_on_a_running_run_streams_nothing_and_ends_with_the_run(
    api: httpx.Client,
) -> None:
    run = api.post("/runs", content=b'{"task": "demo.wait"}').json()
    largest = str(2**63 - 1)
    with api.stream("GET", f"/runs/{run['id']}/events", params={"after": largest}) as stream:
        assert stream.status_code == 200
        api.post(f"/runs/{run['id']}/signals/continue", content=b'"go"')
        body = stream.read().decode()
    assert "id:" not in body  # nothing after the cursor; the stream ended with the run
    assert api.get(f"/runs/{run['id']}").json()["result"] == "go"


@pytest.mark.parametrize(
    "name", ["a%0Ab", "x" * 65, "caf%C3%A9", "%2E%2E", "a%20b", "%C2%B2"], ids=str
)
def test_a_signal_name_that_is_not_a_name_is_refused_and_not_logged(
    api: httpx.Client, name: str
) -> None:
    run = api.post("/runs", content=b'{"task": "demo.wait"}').json()
    (found,) = problems(api.post(f"/runs/{run['id']}/signals/{name}", content=b"1"))
    assert found["param"] == "path.name"
    api.post(f"/runs/{run['id']}/cancel")
    with api.stream("GET", f"/runs/{run['id']}/events") as stream:
        assert "event: signal" not in stream.read().decode()
