"""The shop's tasks: found by taskcast.django in this app's tasks.py at start."""

import time

import taskcast
from taskcast.django import task

from .models import Batch, Item


@task
def import_rows(ctx: taskcast.ThreadContext, batch: Batch, rows: int) -> int:
    """Write ``rows`` items of ``batch`` with the ORM (in a worker thread), then wait for
    more to import until cancelled."""
    for number in range(rows):
        Item.objects.create(batch=batch, number=number)
        ctx.emit("row", {"number": number})
    ctx.emit("rows_written", {"count": rows, "batch": batch.name})
    while not ctx.cancelled:
        time.sleep(0.05)  # the next page of a long import
    return rows


@task
async def count_items(ctx: taskcast.Context, batch: Batch) -> int:
    """Count ``batch``'s items with the async ORM."""
    return await Item.objects.filter(batch=batch).acount()
