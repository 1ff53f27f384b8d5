"""A connection shared by the tests, to a server that lives for the session.

The buggy test keeps its connection in a module global, for the tests after it:
nothing ever closes it, and it is blamed on the test that opened it. The fix
puts the connection in a session fixture, which closes it at the end; what the
fixtures own (the server, its handler of the pooled connection) is not blamed
on the test that happened to set them up.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
shared: list[Connection] = []


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def server() -> AsyncIterator[asyncio.Server]:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server
    server.close()
    await server.wait_closed()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def connection(server: asyncio.Server) -> AsyncIterator[Connection]:
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    yield reader, writer
    writer.close()
    await writer.wait_closed()


async def ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping\n")
    return await reader.readline()


@pytest.mark.asyncio(loop_scope="session")
async def test_buggy(server: asyncio.Server) -> None:
    if not shared:
        port = server.sockets[0].getsockname()[1]
        shared.append(await asyncio.open_connection("127.0.0.1", port))  # BUG: never closed
    assert await ping(*shared[0]) == b"ping\n"


@pytest.mark.asyncio(loop_scope="session")
async def test_fixed(connection: Connection) -> None:
    assert await ping(*connection) == b"ping\n"
