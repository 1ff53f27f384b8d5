"""Which ``Host`` names the server answers: DNS rebinding stops at the door.

A server on 127.0.0.1 without a token trusts whoever can connect to it, meant to be this
machine's users. But any web page a browser here opens can make its own name resolve to
127.0.0.1 (DNS rebinding) and then call the API as if it were the dashboard: submit runs, read
their results. Its requests still name its own site in ``Host``. So a server listening on
loopback answers only requests that name it by a loopback name (``localhost``, ``*.localhost``,
``127.0.0.1``, ``[::1]``, the address it is bound to) or by a name the operator adds
(``--allowed-host``); any other name gets 400 ``invalid_host``.

Elsewhere the default is any name: a server on 0.0.0.0 or a LAN address is reached by names it
cannot know (a load balancer's, a container's), and a Unix socket by no browser at all (a proxy
in front sends the public name). Names given with ``--allowed-host`` are then the only ones
answered, besides the loopback names. ``/health`` answers whatever the name: probes often
address an instance by its IP, and it holds no data.

The matching is Starlette's ``TrustedHostMiddleware`` (exact names, ``*.example.com``
wildcards, ``*`` for any); only its refusal is ours, in the API's JSON error shape.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body, send_error

LOOPBACK_NAMES = ("localhost", "*.localhost", "127.0.0.1", "[::1]")
"""Names that reach only this machine: no other site's page can be served under them."""

ANY_HOST = "*"

UNCHECKED_PATHS = frozenset({"/health"})


def listens_on_loopback(sock: socket.socket) -> bool:
    """True if ``sock`` is a TCP socket bound to a loopback address (127.0.0.0/8, ::1)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    address = ipaddress.ip_address(sock.getsockname()[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def allowed_hosts_for(sock: socket.socket, extra: Sequence[str] = ()) -> list[str]:
    """The ``Host`` names a server listening on ``sock`` answers (see the module docstring):
    the loopback names plus ``extra`` when ``extra`` is given or ``sock`` is on loopback;
    otherwise any name."""
    if not extra and not listens_on_loopback(sock):
        return [ANY_HOST]
    names = [*LOOPBACK_NAMES]
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        bound = sock.getsockname()[0]
        names.append(f"[{bound}]" if ":" in bound else bound)
    return list(dict.fromkeys([*names, *(name.strip().lower() for name in extra)]))


class _Checked:
    """The ``send`` handed to the host check: it swallows the check's own refusal (plain
    text) and remembers whether the request was let through."""

    __slots__ = ("admitted", "send")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.admitted = False

    async def __call__(self, message: Message) -> None:
        pass  # only the check's refusal comes here; an admitted request uses ``self.send``


class HostCheck:
    """ASGI middleware answering only requests whose ``Host`` is in ``allowed_hosts``."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = list(allowed_hosts)
        self._check = TrustedHostMiddleware(self._admit, self.allowed_hosts, www_redirect=False)

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert isinstance(send, _Checked)
        send.admitted = True
        await self.app(scope, receive, send.send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNCHECKED_PATHS:
            await self.app(scope, receive, send)
            return
        checked = _Checked(send)
        await self._check(scope, receive, checked)
        if checked.admitted:
            return
        host = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
        body = error_body(
            "invalid_host",
            f"this server does not answer to the host {host!r}; name it as one of"
            f" {', '.join(self.allowed_hosts)}, or start it with --allowed-host NAME"
            " (a guard against DNS rebinding)",
            host=host,
        )
        await send_error(send, 400, body)
