"""taskcast: run long-lived async tasks, stream their events to many clients, stop them cleanly.

app = taskcast.App(store="sqlite:///taskcast.db")

@app.task(timeout=60, retries=3)
async def fetch(ctx: taskcast.Context, url: str) -> dict: ...
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App
    from .client import AsyncClient, Client
    from .errors import (
        BatchTimedOut,
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
        StepMismatch,
        StoreError,
        StoreUnavailable,
        StreamLost,
        TaskcastError,
        TaskFailed,
        TooManySignals,
        Unauthorized,
        UnknownSchedule,
        UnknownTask,
    )
    from .models import CancelAnswer, Event, Run
    from .policies import RateLimit, Retention
    from .resources import Pool, ResourceError, ResourceTimeout
    from .runs.context import Context
    from .runs.family import ChildRun
    from .runs.shutdown import ShutdownReport
    from .schedules import Schedule
    from .server.access import Viewer
    from .server.embed import asgi
    from .states import RunState
    from .tasks import ThreadContext


# The public names load on first use (PEP 562), so importing a submodule (the pytest plugin,
# taskcast.testing) does not import the server stack: fastapi, pydantic, httpx, redis.
_LAZY = {
    "App": "app",
    "AsyncClient": "client",
    "BatchTimedOut": "errors",
    "CancelAnswer": "models",
    "ChildRun": "runs.family",
    "Client": "client",
    "ConnectionFailed": "errors",
    "Context": "runs.context",
    "Event": "models",
    "InvalidArguments": "errors",
    "InvalidRequest": "errors",
    "NotRetryable": "errors",
    "NotSerializable": "errors",
    "Pool": "resources",
    "QueueFull": "errors",
    "RateLimit": "policies",
    "ResourceError": "resources",
    "ResourceTimeout": "resources",
    "Retention": "policies",
    "StepMismatch": "errors",
    "Run": "models",
    "RunFinished": "errors",
    "RunNotFound": "errors",
    "RunState": "states",
    "Schedule": "schedules",
    "SchemaError": "errors",
    "ServerError": "errors",
    "ShutdownReport": "runs.shutdown",
    "ShuttingDown": "errors",
    "StoreError": "errors",
    "StoreUnavailable": "errors",
    "StreamLost": "errors",
    "TaskFailed": "errors",
    "TaskcastError": "errors",
    "ThreadContext": "tasks",
    "TooManySignals": "errors",
    "Unauthorized": "errors",
    "UnknownSchedule": "errors",
    "UnknownTask": "errors",
    "Viewer": "server.access",
    "asgi": "server.embed",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # The installed package's version: pyproject.toml is the one place that says it.
        # Read on first use: importlib.metadata costs the test kit's plugin its lean import.
        from importlib.metadata import version

        globals()[name] = version("taskcast")
        return globals()[name]
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskcast' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "App",
    "AsyncClient",
    "BatchTimedOut",
    "CancelAnswer",
    "ChildRun",
    "Client",
    "ConnectionFailed",
    "Context",
    "Event",
    "InvalidArguments",
    "InvalidRequest",
    "NotRetryable",
    "NotSerializable",
    "Pool",
    "QueueFull",
    "RateLimit",
    "ResourceError",
    "ResourceTimeout",
    "Retention",
    "Run",
    "RunFinished",
    "RunNotFound",
    "RunState",
    "Schedule",
    "SchemaError",
    "ServerError",
    "ShutdownReport",
    "ShuttingDown",
    "StepMismatch",
    "StoreError",
    "StoreUnavailable",
    "StreamLost",
    "TaskFailed",
    "TaskcastError",
    "ThreadContext",
    "TooManySignals",
    "Unauthorized",
    "UnknownSchedule",
    "UnknownTask",
    "Viewer",
    "__version__",
    "asgi",
]
