"""serve and worker options from TASKCAST_* variables: flags win, bad values are named."""

from __future__ import annotations

import json
import logging

import pytest

from taskcast.cli import _parser
from taskcast.cli.environment import BadEnvironment, JsonFormatter


def _serve(*args: str):  # type: ignore[no-untyped-def]
    options = _parser().parse_args(["serve", *args])
    options.environment.resolve(options)
    return options


def test_options_come_from_the_environment_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_PORT", "9123")
    monkeypatch.setenv("TASKCAST_STORE", "memory://")
    monkeypatch.setenv("TASKCAST_NO_DEMO", "1")
    monkeypatch.setenv("TASKCAST_LOG_FORMAT", "json")
    options = _serve("--port", "9000")
    assert (options.port, options.store, options.no_demo) == (9000, "memory://", True)
    assert options.log_format == "json" and options.host == "127.0.0.1"


def test_a_bad_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_GRACE", "soon")
    with pytest.raises(BadEnvironment, match="TASKCAST_GRACE='soon'"):
        _serve()
    monkeypatch.delenv("TASKCAST_GRACE")
    monkeypatch.setenv("TASKCAST_LOG_LEVEL", "loud")
    with pytest.raises(BadEnvironment, match="use one of debug, info, warning"):
        _serve()


def test_every_serve_option_names_its_variable_in_help() -> None:
    text = _parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for variable in (
        "TASKCAST_HOST",
        "TASKCAST_PORT",
        "TASKCAST_STORE",
        "TASKCAST_LOG_FORMAT",
        "TASKCAST_ALLOWED_HOST",
        "TASKCAST_FETCH_ALLOW",
        "TASKCAST_FETCH_ALLOW_PRIVATE",
    ):
        assert variable in text


def test_a_repeatable_option_comes_from_a_comma_separated_variable_and_flags_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKCAST_ALLOWED_HOST", " tasks.internal, *.example.org ,")
    monkeypatch.setenv("TASKCAST_FETCH_ALLOW", "api.internal")
    monkeypatch.setenv("TASKCAST_FETCH_ALLOW_PRIVATE", "yes")
    options = _serve("--fetch-allow", "a.internal", "--fetch-allow", "b.internal")
    assert options.allowed_host == ["tasks.internal", "*.example.org"]
    assert options.fetch_allow == ["a.internal", "b.internal"]
    assert options.fetch_allow_private is True
    monkeypatch.delenv("TASKCAST_ALLOWED_HOST")
    assert _serve().allowed_host == []


def test_the_worker_takes_the_fetch_options_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_FETCH_ALLOW", "api.internal")
    options = _parser().parse_args(["worker", "--fetch-allow-private"])
    options.environment.resolve(options)
    assert options.fetch_allow == ["api.internal"] and options.fetch_allow_private is True


def test_json_log_lines_carry_level_logger_and_message() -> None:
    record = logging.LogRecord("taskcast.server", logging.WARNING, "x", 1, "hi %s", ("you",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["logger"] == "taskcast.server"
    assert entry["message"] == "hi you" and entry["time"].endswith("Z")
