"""Shared resources: pools tasks borrow from, and the shared httpx client."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

import taskcast
from taskcast.resources import Pool, ResourceError, ResourceTimeout


class Connection:
    """What a pool hands out in these tests: it knows whether it was closed."""

    ids = itertools.count()

    def __init__(self) -> None:
        self.id = next(self.ids)
        self.closed = False
        self.healthy = True


class Factory:
    def __init__(self) -> None:
        self.made: list[Connection] = []

    async def create(self) -> Connection:
        await asyncio.sleep(0)
        connection = Connection()
        self.made.append(connection)
        return connection

    async def close(self, connection: Connection) -> None:
        await asyncio.sleep(0)
        connection.closed = True

    async def validate(self, connection: Connection) -> bool:
        return connection.healthy


def make_pool(factory: Factory, max_size: int = 1, **options: float) -> Pool[Connection]:
    return Pool(
        "db",
        factory.create,
        factory.close,
        validate=factory.validate,
        max_size=max_size,
        **options,  # type: ignore[arg-type]
    )


async def until(condition: object) -> None:
    """Yield to the loop until ``condition()`` holds (no sleeping on time)."""
    for _ in range(10_000):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_a_returned_item_is_lent_again_instead_of_a_new_one() -> None:
    factory = Factory()
    pool = make_pool(factory, max_size=3)
    for _ in range(5):
        async with pool.borrow() as connection:
            assert connection is factory.made[0]
    assert len(factory.made) == 1 and pool.idle_count == 1
    await pool.close()


async def test_no_more_than_max_size_items_exist() -> None:
    factory = Factory()
    pool = make_pool(factory, max_size=2)
    most = 0

    async def borrower() -> None:
        nonlocal most
        async with pool.borrow():
            most = max(most, pool.borrowed_count)
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as group:
        for _ in range(20):
            group.create_task(borrower())
    assert len(factory.made) == 2 and most == 2
    await pool.close()


async def test_waiters_are_served_in_arrival_order() -> None:
    pool = make_pool(Factory(), max_size=1)
    served: list[int] = []

    async def borrower(i: int) -> None:
        async with pool.borrow():
            served.append(i)
            await asyncio.sleep(0)

    for _ in range(20):  # a race test: many times
        served.clear()
        async with asyncio.TaskGroup() as group, pool.borrow():
            for i in range(10):
                group.create_task(borrower(i))
                await until(lambda i=i: pool.waiting_count == i + 1)
        assert served == list(range(10))
    await pool.close()


async def test_a_newcomer_does_not_jump_the_line_when_an_item_comes_back() -> None:
    pool = make_pool(Factory(), max_size=1)
    served: list[str] = []

    async def borrower(name: str) -> None:
        async with pool.borrow():
            served.append(name)

    async with asyncio.TaskGroup() as group:
        async with pool.borrow():
            group.create_task(borrower("waiting"))
            await until(lambda: pool.waiting_count == 1)
        group.create_task(borrower("newcomer"))  # the item is already promised
    assert served == ["waiting", "newcomer"]
    await pool.close()


@pytest.mark.virtual_time
async def test_a_borrower_gives_up_after_the_acquisition_timeout() -> None:
    pool = make_pool(Factory(), max_size=1)
    async with pool.borrow():
        with pytest.raises(ResourceTimeout, match="within 5 s"):
            async with pool.borrow(timeout=5):
                pass
    assert pool.waiting_count == 0
    await pool.close()


async def test_a_stale_item_is_closed_and_replaced_on_borrow() -> None:
    factory = Factory()
    pool = make_pool(factory, max_size=1)
    async with pool.borrow() as first:
        pass
    first.healthy = False
    async with pool.borrow() as second:
        assert second is not first
    assert first.closed and pool.size == 1
    await pool.close()


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    pool = make_pool(Factory(), max_size=1)
    served: list[str] = []

    async def borrower(name: str) -> None:
        async with pool.borrow():
            served.append(name)

    async with asyncio.TaskGroup() as group:
        async with pool.borrow():
            quitter = group.create_task(borrower("quitter"))
            group.create_task(borrower("patient"))
            await until(lambda: pool.waiting_count == 2)
        quitter.cancel()  # the item was handed to it just now: it must pass it on
    assert served == ["patient"]
    assert pool.borrowed_count == 0 and pool.idle_count == 1
    await pool.close()


async def test_no_item_leaks_after_100_cancelled_borrowers(app: taskcast.App) -> None:
    factory = Factory()
    pool = app.resource("db", factory.create, factory.close, max_size=3)
    holding = 0

    @app.task(name="use")
    async def use(ctx: taskcast.Context) -> None:
        nonlocal holding
        async with ctx.resource("db"):
            holding += 1
            await asyncio.Event().wait()

    runs = [await app.submit("use") for _ in range(100)]
    await until(lambda: holding == 3 and pool.waiting_count == 97)
    for run in runs:
        await app.cancel(run.id)
    for run in runs:
        assert (await app.wait(run.id, timeout=10)).state is taskcast.RunState.CANCELLED
    assert (pool.borrowed_count, pool.waiting_count, pool.idle_count) == (0, 0, 3)
    assert len(factory.made) == 3


async def test_items_are_closed_at_shutdown(app: taskcast.App) -> None:
    factory = Factory()
    app.resource("db", factory.create, factory.close, max_size=2)

    @app.task(name="use")
    async def use(ctx: taskcast.Context) -> int:
        async with ctx.resource("db") as connection:
            return int(connection.id)

    await app.wait((await app.submit("use")).id, timeout=10)
    await app.shutdown()
    assert factory.made and all(c.closed for c in factory.made)


async def test_an_item_borrowed_during_shutdown_is_closed_when_it_comes_back() -> None:
    factory = Factory()
    pool = make_pool(factory, max_size=1)
    async with asyncio.TaskGroup() as group:
        async with pool.borrow() as connection:
            closing = group.create_task(pool.close())
            await until(lambda: pool.closed)
            assert not connection.closed
        await closing
    assert connection.closed
    with pytest.raises(ResourceError, match="closed"):
        async with pool.borrow():
            pass


async def test_an_unknown_resource_is_refused_naming_the_registered_ones(
    app: taskcast.App,
) -> None:
    factory = Factory()
    app.resource("db", factory.create, factory.close)

    @app.task(name="use")
    async def use(ctx: taskcast.Context) -> None:
        async with ctx.resource("cache"):
            pass

    run = await app.wait((await app.submit("use")).id, timeout=10)
    assert run.state is taskcast.RunState.FAILED
    assert "no resource named 'cache'; registered resources: db" in run.error["message"]


async def test_tasks_share_one_http_client_closed_at_shutdown(app: taskcast.App) -> None:
    clients: list[httpx.AsyncClient] = []

    @app.task(name="grab")
    async def grab(ctx: taskcast.Context) -> None:
        clients.append(ctx.http)

    for _ in range(3):
        await app.wait((await app.submit("grab")).id, timeout=10)
    assert len({id(c) for c in clients}) == 1
    await app.shutdown()
    assert clients[0].is_closed
