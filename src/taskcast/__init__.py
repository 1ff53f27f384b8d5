"""taskcast: run long-lived async tasks, stream their events to many clients, stop them cleanly.

app = taskcast.App(store="sqlite:///taskcast.db")

@app.task(timeout=60, retries=3)
async def fetch(ctx: taskcast.Context, url: str) -> dict: ...
"""

from .app import App
from .client import AsyncClient, Client
from .context import Context
from .coordinator import ShutdownReport
from .errors import (
    ConnectionFailed,
    InvalidArguments,
    InvalidRequest,
    NotSerializable,
    QueueFull,
    RunFinished,
    RunNotFound,
    SchemaError,
    ServerError,
    ShuttingDown,
    StoreError,
    StreamLost,
    TaskcastError,
    Unauthorized,
    UnknownTask,
)
from .models import Event, Run
from .states import RunState
from .tasks import ThreadContext

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "Context",
    "Event",
    "InvalidArguments",
    "InvalidRequest",
    "NotSerializable",
    "QueueFull",
    "Run",
    "RunFinished",
    "RunNotFound",
    "RunState",
    "SchemaError",
    "ServerError",
    "ShutdownReport",
    "ShuttingDown",
    "StoreError",
    "StreamLost",
    "TaskcastError",
    "ThreadContext",
    "Unauthorized",
    "UnknownTask",
    "__version__",
]
