"""What the HTTP door accepts comes back unchanged, from every store, over SSE and through the
Python client; what it refuses is refused with a 4xx and leaves nothing behind; nothing written
to a log, whoever wrote it, forges an SSE frame.

Property tests (hypothesis) against a real ``taskcast serve --app tests.server.door_app:app``
on each store: memory, a SQLite file and a real Redis. Bodies are sent as raw bytes written by
``json.dumps(allow_nan=True)``, so that they may hold what a store cannot keep (NaN, Infinity,
lone surrogates ``"\\ud800"``); whether a value is keepable is decided here, independently of
the server's code.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import taskcast
from taskcast.events import RESERVED_EVENT_TYPES

from ..conftest import redis_url_for
from ..redis_server import RedisServer
from .live import LiveServer, live_server

PROPERTY = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Strings may hold lone surrogates; numbers may be NaN, infinite or beyond 2^64.
TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
NAME_CHARACTERS = "abcXYZ019._:-"
NAMES = st.text(st.sampled_from(NAME_CHARACTERS) | st.characters(), min_size=0, max_size=70)
NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def keepable(value: Any) -> bool:
    """True if every store can write ``value`` as JSON and read it back (the rule of
    ``models.strict_loads``): finite numbers, Unicode text (no lone surrogate) in strings and
    keys."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(keepable(item) for item in value)
    if isinstance(value, dict):
        return all(keepable(key) and keepable(item) for key, item in value.items())
    return True


def is_name(value: str) -> bool:
    """The name rule, written out again: 1-64 of letters, digits and ._:-, not . or .."""
    return NAME.fullmatch(value) is not None and value not in (".", "..")


def raw(value: Any) -> bytes:
    """``value`` as JSON bytes, NaN and lone surrogates included (as a careless client sends)."""
    return json.dumps(value, allow_nan=True).encode()


def same(a: Any, b: Any) -> bool:
    """Equal as JSON text: 1 is not 1.0, and key order counts."""
    return json.dumps(a) == json.dumps(b)


@pytest.fixture(scope="module", params=["memory", "sqlite", "redis"])
def door(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One server per store for the module (hypothesis runs many examples against it)."""
    directory = tmp_path_factory.mktemp(f"door-{request.param}")
    store = {"memory": "memory://", "sqlite": f"sqlite:///{directory / 'runs.db'}"}.get(
        request.param
    )
    if request.param == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        store = redis_url_for(redis_server)
    with live_server(directory, "--app", "tests.server.door_app:app", store=store) as server:
        yield server


@pytest.fixture
def api(door: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=door.url, timeout=20, headers={"content-type": "application/json"}
    ) as client:
        yield client


@pytest.fixture
def client(door: LiveServer) -> Iterator[taskcast.Client]:
    with taskcast.Client(door.url, timeout=20) as python_client:
        yield python_client


def runs_of(api: httpx.Client, task: str) -> int:
    return len(api.get("/runs", params={"task": task, "limit": 1000}).json()["runs"])


@PROPERTY
@given(value=JSON)
@example(value=[2**80, -(2**63), 2**64 + 1, 1e308, 5e-324, -0.0, 1.0, 0.1])
@example(value={"": ["\u2028\u2029", "\U0001f600", "\x00\x1f", "\\ud800", "a\nid: 9"]})
@example(value={"a": float("nan")})
@example(value=["\udfff"])
def test_a_value_the_door_accepts_comes_back_unchanged_and_one_it_refuses_leaves_nothing(
    api: httpx.Client, client: taskcast.Client, value: Any
) -> None:
    before = runs_of(api, "door.keep")
    body = b'{"task": "door.keep", "args": {"value": ' + raw(value) + b"}}"
    answer = api.post("/runs", content=body)
    if not keepable(value):
        assert answer.status_code == 422, answer.text
        assert answer.json()["problems"][0]["param"] == "body"
        assert runs_of(api, "door.keep") == before
        return
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["id"]
    assert same(answer.json()["args"]["value"], value)
    events = list(client.events(run_id))  # over SSE, through the Python client
    kept = [event.data for event in events if event.type == "kept"]
    assert len(kept) == 1 and same(kept[0], value)
    assert events[-1].type == "completed" and same(events[-1].data["result"], value)
    stored = api.get(f"/runs/{run_id}").json()
    assert same(stored["args"]["value"], value) and same(stored["result"], value)
    listed = api.get("/runs", params={"task": "door.keep", "limit": 1}).json()["runs"][0]
    assert listed["id"] == run_id and same(listed["result"], value)


@PROPERTY
@given(value=JSON)
def test_signal_data_the_door_accepts_reaches_the_task_unchanged(
    api: httpx.Client, client: taskcast.Client, value: Any
) -> None:
    run = client.submit("door.listen", name="go")
    answer = api.post(f"/runs/{run.id}/signals/go", content=raw(value))
    if not keepable(value):
        assert answer.status_code == 422, answer.text
        client.cancel(run.id)
        assert [e.type for e in client.events(run.id)][-1] == "cancelled"
        assert "signal" not in [e.type for e in client.events(run.id)]
        return
    assert answer.status_code == 202, answer.text
    done = client.wait(run.id, timeout=20)
    assert done.state is taskcast.RunState.COMPLETED and same(done.result, value)
    (logged,) = [e.data for e in client.events(run.id) if e.type == "signal"]
    assert same(logged, {"name": "go", "data": value})


@PROPERTY
@given(kind=NAMES)
def test_an_event_type_is_kept_exactly_when_it_is_a_name(
    api: httpx.Client, client: taskcast.Client, kind: str
) -> None:
    answer = api.post("/runs", content=raw({"task": "door.emit", "args": {"kind": kind}}))
    if not keepable(kind):
        assert answer.status_code == 422
        return
    assert answer.status_code == 201, answer.text
    events = list(client.events(answer.json()["id"]))
    if is_name(kind) and kind not in RESERVED_EVENT_TYPES:
        assert [e.type for e in events][2:] == [kind, "completed"]
    else:
        assert [e.type for e in events][2:] == ["failed"]
        assert events[-1].data["error"]["type"] == "InvalidRequest"


@PROPERTY
@given(name=NAMES)
def test_a_signal_name_is_taken_exactly_when_it_is_a_name(
    api: httpx.Client, client: taskcast.Client, name: str
) -> None:
    run = client.submit("door.listen", name=name if is_name(name) else "other")
    segment = quote(name.encode("utf-8", "surrogatepass"), safe="")
    answer = api.post(f"/runs/{run.id}/signals/{segment}", content=b"1")
    if is_name(name):
        assert answer.status_code == 202, answer.text
        assert client.wait(run.id, timeout=20).result == 1
    else:
        assert 400 <= answer.status_code < 500, answer.text
        client.cancel(run.id)
        assert "signal" not in [e.type for e in client.events(run.id)]


LATIN_1_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=25
)


@PROPERTY
@given(cursor=LATIN_1_TEXT | st.integers(min_value=0, max_value=2**64).map(str))
def test_a_cursor_is_taken_exactly_when_it_is_ascii_digits_below_2_63(
    api: httpx.Client, client: taskcast.Client, cursor: str
) -> None:
    run = client.submit("door.keep", value=1)
    client.wait(run.id, timeout=20)  # 4 events: queued, started, kept, completed
    for where in ("header", "query"):
        if where == "header":
            text = cursor.strip(" ")  # no header value starts or ends with a space
            headers = {"Last-Event-ID": text.encode("latin-1")}
            answer = api.get(f"/runs/{run.id}/events", headers=headers)
        else:
            answer = api.get(f"/runs/{run.id}/events", params={"after": cursor})
            text = cursor
        taken = text.isascii() and text.isdigit() and int(text) < 2**63
        seq = int(text) if taken else -1
        if where == "header" and not text:
            taken, seq = True, 0  # an empty Last-Event-ID is no Last-Event-ID
        if not taken:
            assert answer.status_code == 422, answer.text
            name = "Last-Event-ID" if where == "header" else "after"
            assert answer.json()["problems"][0]["param"] == f"{where}.{name}"
        elif seq >= 4:
            assert answer.status_code == 204
        else:
            assert answer.status_code == 200
            assert answer.text.count("\nid: ") + answer.text.startswith("id: ") <= 4 - seq


@pytest.mark.parametrize(
    "forged",
    [
        "x\nid: 999\nevent: completed\ndata: {}\n\n",
        "x\r\nid: 999\r\nevent: completed\r\ndata: {}\r\n\r\n",
        "x\rid: 999\revent: completed\rdata: {}\r\r",
        "x\0",
    ],
    ids=["lf", "crlf", "cr", "nul"],
)
def test_an_event_written_past_the_doors_cannot_forge_a_frame(
    api: httpx.Client, client: taskcast.Client, forged: str
) -> None:
    run = client.submit("door.forge", kind=forged)
    events = list(client.events(run.id))
    assert [e.type for e in events][-1] == "completed"
    assert [e.seq for e in events] == [1, 2, 3, 4]
    (odd,) = [e for e in events if e.type.startswith("x")]
    assert "\n" not in odd.type and "\r" not in odd.type and "\0" not in odd.type
    with api.stream("GET", f"/runs/{run.id}/events") as stream:
        frames = stream.read().decode()
    assert frames.count("\n\n") == 4 and "\r" not in frames and "\0" not in frames
    assert [line for line in frames.split("\n") if line.startswith("id:")] == [
        f"id: {seq}" for seq in (1, 2, 3, 4)
    ]
