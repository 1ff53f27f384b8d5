"""HTTP answers and transport failures as the typed errors of ``taskcast.errors``.

The server's error body is ``{"error": code, "message": sentence, ...details}``; the code picks
the class, the message and details are kept as the server wrote them, so a client raises what the
in-process API raises, with the same words.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from ..errors import (
    ConnectionFailed,
    InvalidArguments,
    InvalidRequest,
    NotRetryable,
    NotSerializable,
    QueueFull,
    RunFinished,
    RunNotFound,
    SchemaError,
    ServerError,
    ShuttingDown,
    StoreError,
    StoreUnavailable,
    TaskcastError,
    TooManySignals,
    Unauthorized,
    UnknownSchedule,
    UnknownTask,
)

ERRORS_BY_CODE: dict[str, type[TaskcastError]] = {
    error.code: error
    for error in (
        UnknownTask,
        UnknownSchedule,
        InvalidArguments,
        InvalidRequest,
        NotSerializable,
        NotRetryable,
        RunNotFound,
        RunFinished,
        QueueFull,
        ShuttingDown,
        StoreError,
        SchemaError,
        StoreUnavailable,
        TooManySignals,
        Unauthorized,
    )
}


def error_from_response(response: httpx.Response) -> TaskcastError:
    """The typed error an error answer stands for (its body must have been read).

    A taskcast error body becomes its class (``RunNotFound``...) with the server's message and
    details; ``QueueFull.retry_after`` comes from ``Retry-After``. Anything else (a proxy's
    HTML page, an unknown code) becomes ``ServerError`` with the status.
    """
    try:
        body = response.json()
        code, message = str(body["error"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return ServerError(
            f"the server answered {response.status_code}: {text}", status=response.status_code
        )
    kind = ERRORS_BY_CODE.get(code)
    if kind is None:
        return ServerError(message, status=response.status_code, code=code)
    details: dict[str, Any] = {k: v for k, v in body.items() if k not in ("error", "message")}
    # The server's own message and details, not the ones each class's __init__ would compose.
    error = kind.__new__(kind)
    TaskcastError.__init__(error, message, **details)
    if isinstance(error, QueueFull | StoreUnavailable | TooManySignals):
        error.retry_after = _retry_after(response, details)
    return error


def _retry_after(response: httpx.Response, details: dict[str, Any]) -> float:
    for candidate in (response.headers.get("Retry-After"), details.get("retry_after")):
        try:
            seconds = float(candidate)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return 1.0


def connection_failed(url: str, error: httpx.TransportError) -> ConnectionFailed:
    """``error`` (the request could not be sent, or its answer not received) as a sentence."""
    detail = str(error) or type(error).__name__
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectionFailed(f"cannot reach taskcast at {url} ({detail})")
    if isinstance(error, httpx.TimeoutException):
        return ConnectionFailed(f"taskcast at {url} did not answer in time ({detail})")
    return ConnectionFailed(f"the connection to taskcast at {url} failed ({detail})")
