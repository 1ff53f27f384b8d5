"""taskcast: run long-lived async tasks, stream their events to many clients, stop them cleanly.

app = taskcast.App(store="sqlite:///taskcast.db")

@app.task(timeout=60, retries=3)
async def fetch(ctx: taskcast.Context, url: str) -> dict: ...
"""

from .app import App
from .children import ChildRun
from .client import AsyncClient, Client
from .context import Context
from .coordinator import ShutdownReport
from .errors import (
    BatchTimedOut,
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
    TaskFailed,
    Unauthorized,
    UnknownTask,
)
from .models import Event, Run
from .resources import Pool, ResourceError, ResourceTimeout
from .states import RunState
from .tasks import ThreadContext

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncClient",
    "BatchTimedOut",
    "ChildRun",
    "Client",
    "ConnectionFailed",
    "Context",
    "Event",
    "InvalidArguments",
    "InvalidRequest",
    "NotSerializable",
    "Pool",
    "QueueFull",
    "ResourceError",
    "ResourceTimeout",
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
    "TaskFailed",
    "TaskcastError",
    "ThreadContext",
    "Unauthorized",
    "UnknownTask",
    "__version__",
]
