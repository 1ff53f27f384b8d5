"""The classic lost update: read a shared balance, await, write it back.

Under asyncio's default first-in first-out order the two deposits happen not
to overlap, so a plain test passes. Under seeded schedules a deposit reads
the balance while the other is between its read and its write: one deposit
is lost. The schedules marker finds it and prints the seed; the locked
version passes every schedule.
"""

import asyncio

import pytest


class Account:
    def __init__(self) -> None:
        self.balance = 0
        self.lock = asyncio.Lock()


async def audit(steps: int) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)  # e.g. write an audit record


async def deposit(account: Account, amount: int, audit_steps: int) -> None:
    await audit(audit_steps)
    current = account.balance
    await asyncio.sleep(0)  # BUG: the balance can change while we wait
    account.balance = current + amount


async def deposit_locked(account: Account, amount: int, audit_steps: int) -> None:
    await audit(audit_steps)
    async with account.lock:
        current = account.balance
        await asyncio.sleep(0)
        account.balance = current + amount


async def test_passes_in_fifo_order() -> None:
    account = Account()
    await asyncio.gather(deposit(account, 1, 0), deposit(account, 1, 2))
    assert account.balance == 2


@pytest.mark.schedules(n=20)
async def test_buggy() -> None:
    account = Account()
    await asyncio.gather(deposit(account, 1, 0), deposit(account, 1, 2))
    assert account.balance == 2


@pytest.mark.schedules(n=20)
async def test_fixed() -> None:
    account = Account()
    await asyncio.gather(deposit_locked(account, 1, 0), deposit_locked(account, 1, 2))
    assert account.balance == 2
