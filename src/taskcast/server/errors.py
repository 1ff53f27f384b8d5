"""HTTP errors have one shape: ``{"error": code, "message": sentence, ...details}``.

Engine errors (``TaskcastError``) already carry their code, status and details; this module maps
them, FastAPI's request validation errors and unknown routes onto that shape.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import Send

from ..app import App
from ..errors import QueueFull, ShuttingDown, StoreUnavailable, TaskcastError, TooManySignals


def refuse_if_stopped(app: App) -> None:
    """Raise ``ShuttingDown`` (503) once ``app`` stopped: its store is closed, so a route that
    reads it refuses cleanly instead of failing on it."""
    if app.stopped:
        raise ShuttingDown("taskcast is shutting down; retry against another instance")


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    """The JSON body of an HTTP error."""
    return {"error": code, "message": message, **details}


def body_too_large(limit: int) -> dict[str, Any]:
    """The body of a 413: the request body is over ``limit`` bytes."""
    return error_body(
        "body_too_large", f"the request body is larger than {limit} bytes; send less", limit=limit
    )


def error_response(error: TaskcastError) -> JSONResponse:
    """``error`` as a response: its status, its body, and ``Retry-After`` for a full queue, a run
    full of undelivered signals or a store that cannot be reached."""
    headers = {}
    if isinstance(error, QueueFull | StoreUnavailable | TooManySignals):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return JSONResponse(error.to_dict(), status_code=error.status, headers=headers)


async def send_error(send: Send, status: int, body: dict[str, Any], **headers: str) -> None:
    """Send a JSON error from plain ASGI middleware (before any route ran)."""
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(
            (name.lower().replace("_", "-").encode(), value.encode())
            for name, value in headers.items()
        ),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def _problems(error: RequestValidationError) -> list[dict[str, str]]:
    problems = []
    for item in error.errors():
        if item.get("type") == "json_invalid":  # the body is not JSON, or not JSON we can keep
            reason = (item.get("ctx") or {}).get("error") or item["msg"]
            problems.append({"param": "body", "problem": str(reason)})
            continue
        location = [str(part) for part in item.get("loc", ())]
        if location and location[0] in ("body", "query", "path", "header"):
            where, name = location[0], ".".join(location[1:])
        else:
            where, name = "request", ".".join(location)
        problems.append({"param": f"{where}.{name}" if name else where, "problem": item["msg"]})
    return problems


async def _on_taskcast_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TaskcastError)
    return error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = _problems(exc)
    text = "; ".join(f"{p['param']}: {p['problem']}" for p in problems)
    body = error_body("invalid_request", f"the request is not valid: {text}", problems=problems)
    return JSONResponse(body, status_code=422)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = error_body("not_found", f"no route {request.method} {request.url.path}; see /docs")
    elif exc.status_code == 405:
        allow = ", ".join(allowed_methods(request))
        if request.method == "OPTIONS":  # what may be done here: the methods, no body
            return Response(status_code=204, headers={"Allow": allow})
        body = error_body(
            "method_not_allowed",
            f"{request.url.path} does not take {request.method}; it takes {allow} (see /docs)",
        )
        return JSONResponse(body, status_code=405, headers={"Allow": allow})
    elif exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode: the same 422 as any other bad request.
        message = f"the request body could not be read: {exc.detail}; send JSON"
        return JSONResponse(error_body("invalid_request", message), status_code=422)
    elif exc.status_code == 413:
        body = body_too_large(int(exc.detail))
    else:
        body = error_body("http_error", str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods the request's path takes, sorted, ``OPTIONS`` included: those some route of
    the app takes in full (Starlette's own 405 names only the first matching route's)."""
    methods = {"OPTIONS"}
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return sorted(methods)


def install_error_handlers(api: FastAPI) -> None:
    """Make every error ``api`` returns take the one shape above."""
    api.add_exception_handler(TaskcastError, _on_taskcast_error)
    api.add_exception_handler(RequestValidationError, _on_validation_error)
    api.add_exception_handler(HTTPException, _on_http_error)
