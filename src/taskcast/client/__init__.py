"""The Python client of a taskcast server: ``AsyncClient`` (asyncio) and ``Client`` (blocking).

```python
async with taskcast.AsyncClient("http://127.0.0.1:8000") as client:
    run = await client.submit("demo.count", n=3)
    async for event in client.events(run.id):
        print(event.seq, event.type, event.data)
```

Both speak the HTTP API through the same requests (``calls.py``) and follow event streams with
the same resume logic (``stream.py``); see docs/client.md.
"""

from .async_client import AsyncClient
from .calls import TaskInfo
from .stream import ReconnectPolicy
from .sync_client import Client

__all__ = ["AsyncClient", "Client", "ReconnectPolicy", "TaskInfo"]
