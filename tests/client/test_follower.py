"""The resume logic without I/O (stream.py): decoding, cursor, backoff."""

from collections.abc import Callable

import httpx
import pytest

from taskcast import Event, RunNotFound, StreamLost
from taskcast.client.stream import DEFAULT_RETRY, Follower, ReconnectPolicy, SSEDecoder

STREAM = httpx.Response(200, headers={"content-type": "text/event-stream; charset=utf-8"})


def block(seq: int, kind: str = "progress", data: str = "{}") -> str:
    return f"id: {seq}\nevent: {kind}\nat: 1700000000.25\ndata: {data}\n\n"


def longest(low: float, high: float) -> float:
    return high


def shortest(low: float, high: float) -> float:
    return low


def opened(
    policy: ReconnectPolicy | None = None,
    uniform: Callable[[float, float], float] = longest,
) -> Follower:
    """A follower whose stream just opened; its jitter always picks ``uniform``'s choice."""
    follower = Follower("http://test", "r1", 0, policy or ReconnectPolicy(), uniform)
    follower.opened(STREAM)
    return follower


def test_events_are_decoded_into_the_engines_event_objects() -> None:
    follower = opened()
    events = follower.received(block(1, "queued", '{"task":"demo.count"}'))
    assert events == [Event("r1", 1, "queued", {"task": "demo.count"}, 1700000000.25)]


def test_events_split_anywhere_and_with_any_line_ending_decode_the_same() -> None:
    text = "retry: 500\r\n" + block(1).replace("\n", "\r\n") + ": keep-alive\r" + block(2)
    decoder = SSEDecoder()
    whole = decoder.feed(text)
    piecewise = SSEDecoder()
    pieces = [event for char in text for event in piecewise.feed(char)]
    assert pieces == whole and [e.id for e in whole] == ["1", "2"]
    assert decoder.retry_ms == piecewise.retry_ms == 500


def test_an_event_cut_before_its_blank_line_is_never_yielded() -> None:
    follower = opened()
    assert [e.seq for e in follower.received(block(1) + block(2)[:-1])] == [1]
    follower.opened(STREAM)  # a new connection: the half-read event is dropped
    assert [e.seq for e in follower.received(block(2) + block(3))] == [2, 3]


def test_reconnects_resume_after_the_last_event_yielded() -> None:
    follower = opened()
    follower.received(block(1) + block(2))
    assert follower.headers()["Last-Event-ID"] == "2"


def test_events_at_or_below_the_cursor_are_skipped() -> None:
    follower = opened()
    follower.received(block(1) + block(2))
    assert [e.seq for e in follower.received(block(2) + block(3))] == [3]


def test_the_terminal_event_ends_the_stream() -> None:
    follower = opened()
    events = follower.received(block(1) + block(2, "completed") + block(3))
    assert [e.seq for e in events] == [1, 2] and follower.done


def test_204_ends_the_stream() -> None:
    follower = Follower("http://test", "r1", 5, ReconnectPolicy())
    follower.opened(httpx.Response(204))
    assert follower.done


def test_reconnect_delays_start_at_the_servers_hint_and_double_up_to_the_cap() -> None:
    follower = opened(ReconnectPolicy(attempts=10, max_delay=5))
    follower.received("retry: 500\n" + block(1))
    delays = [follower.reconnect_delay(httpx.ReadError("cut")) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_reconnect_delays_are_jittered_down_to_half() -> None:
    follower = opened(uniform=shortest)
    assert follower.reconnect_delay(None) == DEFAULT_RETRY / 2


def test_an_event_received_starts_the_backoff_again() -> None:
    follower = opened()
    follower.reconnect_delay(None)
    follower.reconnect_delay(None)
    follower.received(block(1))
    assert follower.reconnect_delay(None) == DEFAULT_RETRY


def test_too_many_failed_reconnects_in_a_row_raise_stream_lost() -> None:
    follower = opened(ReconnectPolicy(attempts=2))
    follower.received(block(1) + block(2))
    cut = httpx.ReadError("cut")
    follower.reconnect_delay(cut)
    follower.reconnect_delay(cut)
    with pytest.raises(StreamLost) as caught:
        follower.reconnect_delay(cut)
    assert caught.value.last_seq == 2 and caught.value.__cause__ is cut


def test_an_error_that_reconnecting_cannot_fix_is_raised_at_once() -> None:
    follower = opened()
    error = RunNotFound("r1")
    with pytest.raises(RunNotFound):
        follower.reconnect_delay(error)


def test_a_negative_cursor_or_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="after"):
        Follower("http://test", "r1", -1, ReconnectPolicy())
    with pytest.raises(ValueError, match="reconnects"):
        ReconnectPolicy(attempts=-1)
    with pytest.raises(ValueError, match="max_reconnect_delay"):
        ReconnectPolicy(max_delay=float("nan"))
