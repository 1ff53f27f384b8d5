"""A listening socket opened by the test and never closed.

The leak guard fails the test and shows where the socket was created.
"""

import socket

servers: list[socket.socket] = []


def test_buggy() -> None:
    server = socket.socket()  # BUG: never closed
    server.bind(("127.0.0.1", 0))
    server.listen()
    servers.append(server)
    assert server.getsockname()[1] > 0


def test_fixed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert server.getsockname()[1] > 0
