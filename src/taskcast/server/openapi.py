"""What ``/openapi.json`` says beyond what FastAPI derives from the routes.

FastAPI documents each route's parameters and its success answer. This module adds what the
routes do not show, so that a client generated from the document, or a tool testing the
server against it (schemathesis), meets no surprise:

* every error a route answers, always JSON (``ErrorBody``), also on routes whose success is an
  event stream;
* with a token, the bearer scheme, required by every operation but ``/health`` (the docs page's
  Authorize button then sends it); without one, no 401 at all;
* links from a submitted run to the operations on it, so that a client can follow them.

``OPTIONS`` is answered on every path with the methods it takes (``Allow``), and any other
method it does not take with 405 and the same ``Allow`` (``errors.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .schemas import ErrorBody

ERROR_DESCRIPTIONS = {
    401: "The server has a token and it was missing or wrong.",
    404: "No such run, task or schedule.",
    409: "The run already finished.",
    413: "The body is too large.",
    422: "The request is not valid; `problems` names each field and why.",
    429: "Too many at once (the queue is full, or the run holds as many signals as it may);"
    " retry after `Retry-After` seconds.",
    503: "The server is shutting down, or its store cannot be reached (then with"
    " `Retry-After`); `message` says which.",
}

ALWAYS = (401, 422, 503)
"""Errors every operation but ``/health`` may answer."""

BEARER = "bearer"

_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may answer ``statuses`` besides ``ALWAYS``."""
    return {
        status: {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }
        for status in sorted({*ALWAYS, *statuses})
    }


def complete(api: FastAPI, *, bearer: bool) -> None:
    """Make ``api.openapi()`` add what the module docstring lists (``bearer``: the server
    requires a token)."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["ErrorBody"] = ErrorBody.model_json_schema()
            _document_auth(schema, bearer)
            _link_runs(schema)
        assert api.openapi_schema is not None
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema.get("paths", {}).items()
        for method, operation in item.items()
    ]


def _document_auth(schema: dict[str, Any], bearer: bool) -> None:
    if bearer:
        schema["components"]["securitySchemes"] = {
            BEARER: {
                "type": "http",
                "scheme": "bearer",
                "description": "The server's token (`--token`); event streams also take `?token=`.",
            }
        }
    for path, _, operation in _operations(schema):
        if path == "/health":
            continue
        if bearer:
            operation["security"] = [{BEARER: []}]
        else:
            operation.get("responses", {}).pop("401", None)


def _link_runs(schema: dict[str, Any]) -> None:
    """``POST /runs`` answers a run: link its ``id`` to the operations that take a run id."""
    submit = schema.get("paths", {}).get("/runs", {}).get("post")
    if submit is None or "201" not in submit["responses"]:
        return
    links = {}
    for path, method, operation in _operations(schema):
        if path.startswith("/runs/{run_id}") and "operationId" in operation:
            name = operation["operationId"]
            links[name] = {
                "operationId": name,
                "parameters": {"run_id": "$response.body#/id"},
                "description": f"{method.upper()} {path} of the run just submitted.",
            }
    submit["responses"]["201"]["links"] = links
