"""Pending I/O: may a reply still reach this event loop from outside it?

Virtual time asks this before it jumps the clock. Waiting a little real time
for a reply that is on its way keeps a timeout from firing before it; waiting
when none can come only makes virtual time slower than real time (a test with
a listening server and a periodic timer used to wait at every tick).

The rule, per file descriptor the loop's selector watches:

* the loop's own self-pipe: never (threads wake the loop through it, and
  executor jobs are waited for on their own);
* a descriptor registered for writing (a connect or a send under way): always;
* a listening socket: never by itself (a client made in this loop connects
  through a socket this rule sees; one in another process or thread is outside
  what a clock can know);
* a connection whose peer is a socket of this same loop (an in-process client
  and server): never, since what one end writes is already readable at the other
  when the selector is polled;
* a connection to anything else, through a transport (streams, protocols,
  datagram endpoints): after this loop wrote to it or first saw it, until the
  loop has then waited *io_idle* real seconds without a byte arriving: a reply
  was possible, it has come or is not coming;
* anything else (a pipe to a subprocess, a socket read with ``loop.sock_recv``,
  whose writes may be a raw ``send()``, a descriptor a library registered by
  number): always, since we cannot see what was sent or it lives on its own clock.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import selectors
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_WILDCARDS = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class _Endpoint:
    """What one registered socket is: its identity, kind and addresses."""

    sock_id: int
    listening: bool
    sockname: Any
    peername: Any


class PendingIo:
    """Tracks what an event loop may still receive from outside; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._selector: selectors.BaseSelector = loop._selector  # type: ignore[attr-defined]
        self._endpoints: dict[int, _Endpoint] = {}
        self._awaiting: set[int] = set()

    def wrote(self, fd: int) -> None:
        """The loop wrote to *fd*: a reply may be on its way."""
        self._awaiting.add(fd)

    def went_quiet(self) -> None:
        """The loop waited io_idle and nothing came: what was awaited has landed or never will."""
        self._awaiting.clear()

    def expected(self) -> bool:
        """Return True if some input may still arrive from outside the loop (the rule above)."""
        self_pipe = _fileno(getattr(self.loop, "_ssock", None))
        seen: dict[int, _Endpoint] = {}
        pending = False
        for key in list(self._selector.get_map().values()):
            fd = key.fd
            if fd == self_pipe:
                continue
            if key.events & selectors.EVENT_WRITE:
                pending = True
                continue
            sock, through_transport = self._socket_of(fd, key)
            if sock is None:
                pending = True  # a pipe, or a descriptor we cannot look into
                continue
            endpoint = self._endpoints.get(fd)
            if endpoint is None or endpoint.sock_id != id(sock):
                endpoint = _describe(sock)
                if not endpoint.listening:
                    self._awaiting.add(fd)  # new: the peer may speak first
            if not (endpoint.listening or through_transport):
                pending = True  # read with loop.sock_recv(): its writes may be a raw send()
                continue
            seen[fd] = endpoint
        self._endpoints = seen
        self._awaiting &= seen.keys()
        if pending:
            return True
        local = _addresses(seen.values())
        return any(
            not seen[fd].listening and not _served_here(seen[fd].peername, local)
            for fd in self._awaiting
        )

    def _socket_of(self, fd: int, key: selectors.SelectorKey) -> tuple[socket.socket | None, bool]:
        """The socket behind *fd*, and whether a transport (whose writes we see) owns it."""
        transports = getattr(self.loop, "_transports", {})
        sock = getattr(transports.get(fd), "_sock", None)
        if isinstance(sock, socket.socket):
            return sock, True
        # A server's accept loop or sock_recv/sock_accept: the socket is an argument.
        reader = key.data[0] if isinstance(key.data, tuple) and key.data else None
        for arg in getattr(reader, "_args", None) or ():
            if isinstance(arg, socket.socket) and _fileno(arg) == fd:
                return arg, False
        return None, False


def _fileno(sock: object) -> int:
    try:
        return int(sock.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return -1


def _describe(sock: socket.socket) -> _Endpoint:
    try:
        listening = bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        listening = False
    try:
        sockname = sock.getsockname()
    except OSError:
        sockname = None
    try:
        peername = sock.getpeername()
    except OSError:  # not connected (a datagram socket): any peer
        peername = None
    return _Endpoint(id(sock), listening, sockname, peername)


def _addresses(endpoints: Any) -> set[Any]:
    """The addresses this loop's sockets answer on (a listener on 0.0.0.0 answers on any host)."""
    found: set[Any] = set()
    for endpoint in endpoints:
        name = endpoint.sockname
        if isinstance(name, tuple) and len(name) >= 2:
            host = "*" if name[0] in _WILDCARDS else name[0]
            found.add((host, name[1]))
        elif name:
            found.add(name)  # a Unix socket's path
    return found


def _served_here(peer: Any, local: set[Any]) -> bool:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return (peer[0], peer[1]) in local or ("*", peer[1]) in local
    return bool(peer) and peer in local


# -- seeing the loop's writes -------------------------------------------------------

#: The PendingIo of each loop under virtual time.
_watched: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PendingIo] = (
    weakref.WeakKeyDictionary()
)
_originals: dict[str, Callable[..., Any] | None] = {}

_Socket = asyncio.selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
_Datagram = asyncio.selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]


#: (class, method name) pairs through which a loop writes to a socket.
_WRITES = ((_Socket, "write"), (_Socket, "writelines"), (_Datagram, "sendto"))


def watch(loop: asyncio.AbstractEventLoop) -> PendingIo:
    """Start watching *loop*'s writes; returns its :class:`PendingIo`."""
    pending = PendingIo(loop)
    _watched[loop] = pending
    if not _originals:
        for cls, name in _WRITES:
            # Remember what the class itself defined (None: it inherits the method).
            _originals[f"{cls.__name__}.{name}"] = cls.__dict__.get(name)
            setattr(cls, name, _wrap(getattr(cls, name)))
    return pending


def unwatch(loop: asyncio.AbstractEventLoop) -> None:
    """Stop watching *loop*; the last one restores the transports' methods."""
    _watched.pop(loop, None)
    if not _watched and _originals:
        for cls, name in _WRITES:
            original = _originals[f"{cls.__name__}.{name}"]
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        _originals.clear()


def _wrap(method: Callable[..., Any]) -> Callable[..., Any]:
    def noting_the_write(self: Any, *args: Any, **kwargs: Any) -> Any:
        pending = _watched.get(self._loop) if self._loop is not None else None
        if pending is not None:
            pending.wrote(self._sock_fd)
        return method(self, *args, **kwargs)

    noting_the_write.__name__ = method.__name__
    noting_the_write.__qualname__ = method.__qualname__
    return noting_the_write
