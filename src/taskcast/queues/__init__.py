"""Work queues: where runs wait until a process takes them (``runs.ports.WorkQueue``).

    local.py   LocalQueue: the process that stores a run executes it (memory://, sqlite://);
               it resumes the store's unfinished runs at start
    redis.py   RedisQueue: one stream per task shared by every worker of a deployment, with
               heartbeats, hand-back and cancel/signal messages between processes

``queue_for(store)`` gives the queue a store comes with: this is the one place that knows which
deployments share their queue.
"""

from __future__ import annotations

import sys

from ..runs.ports import WorkQueue
from ..stores.base import Store


def is_shared(store: Store) -> bool:
    """True when the runs of ``store`` go to a work queue that several processes share."""
    # A Redis store exists only if its module was loaded: redis-py stays unloaded otherwise.
    redis_stores = sys.modules.get("taskcast.stores.redis")
    return redis_stores is not None and isinstance(store, redis_stores.RedisStore)


def queue_for(store: Store, *, max_queue: int = 10_000) -> WorkQueue:
    """The work queue that goes with ``store``: shared for Redis, local otherwise, holding at
    most ``max_queue`` queued runs (``QueueFull`` beyond)."""
    if is_shared(store):
        from ..stores.redis import RedisStore
        from .redis import RedisQueue

        assert isinstance(store, RedisStore)
        return RedisQueue(store, max_queue)
    from .local import LocalQueue

    return LocalQueue(store, max_queue)
