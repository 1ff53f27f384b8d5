"""taskcast: run long-lived async tasks, stream their events to many clients, stop them cleanly.

app = taskcast.App(store="sqlite:///taskcast.db")

@app.task(timeout=60, retries=3)
async def fetch(ctx: taskcast.Context, url: str) -> dict: ...
"""

from .app import App
from .children import ChildRun
from .context import Context
from .coordinator import ShutdownReport
from .errors import (
    BatchTimedOut,
    InvalidArguments,
    InvalidRequest,
    NotSerializable,
    QueueFull,
    RunFinished,
    RunNotFound,
    SchemaError,
    ShuttingDown,
    StoreError,
    TaskcastError,
    TaskFailed,
    UnknownTask,
)
from .models import Event, Run
from .resources import Pool, ResourceError, ResourceTimeout
from .states import RunState
from .tasks import ThreadContext

__version__ = "0.1.0"

__all__ = [
    "App",
    "BatchTimedOut",
    "ChildRun",
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
    "ShutdownReport",
    "ShuttingDown",
    "StoreError",
    "TaskFailed",
    "TaskcastError",
    "ThreadContext",
    "UnknownTask",
    "__version__",
]
