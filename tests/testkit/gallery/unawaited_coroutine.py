"""A coroutine called but never awaited: its body never runs.

Python only warns at garbage collection, often after the test passed; the
leak guard fails the test that created it and points at the call.
"""

saved: list[str] = []


async def save(record: str) -> None:
    saved.append(record)


async def test_buggy() -> None:
    save("a")  # BUG: missing await
    assert saved == []


async def test_fixed() -> None:
    saved.clear()
    await save("a")
    assert saved == ["a"]
