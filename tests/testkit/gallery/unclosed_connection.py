"""An asyncio connection (transport) opened and dropped without close().

The leak guard reports the socket left open, created by open_connection.
"""

import asyncio


async def test_buggy() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, _writer = await asyncio.open_connection("127.0.0.1", port)  # BUG: never closed
    server.close()
    await server.wait_closed()


async def test_fixed() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
