"""Where ``http.fetch`` may connect: public addresses only, unless the server allows more.

``http.fetch`` fetches whatever URL a run is submitted with, from inside the server's network:
without a guard, a URL naming ``127.0.0.1``, a private address or the cloud metadata service
(``169.254.169.254``, which hands out the machine's credentials) would have taskcast read what
only that network may read and return it as the run's result (server-side request forgery,
SSRF). So each request ``http.fetch`` sends, and each redirect it follows, goes only to
addresses that are globally reachable:

* the host is resolved first, and every address it resolves to is checked (a public name may
  point inside; an IP written in any form, ``2130706433`` or ``::ffff:127.0.0.1``, resolves to
  itself);
* the connection is made to an address that was checked, not to the name (which could resolve
  somewhere else a moment later: DNS rebinding); the ``Host`` header and TLS (SNI and the
  certificate's check) still use the name;
* a host named in ``FetchPolicy.allow_hosts`` (``--fetch-allow HOST``) may resolve anywhere;
  ``allow_private`` (``--fetch-allow-private``) turns the check off.

Environment proxies (``HTTP_PROXY``) are not used while the check is on: a proxy resolves
names itself, out of sight of the check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""IPv6 addresses that a NAT64 gateway turns into the IPv4 address in their last 32 bits."""


class AddressNotAllowed(Exception):
    """``http.fetch`` refused to connect: the host resolves to an address that is not public
    (loopback, private, link-local...) and the server does not allow it."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Which non-public addresses ``http.fetch`` may reach.

    ``allow_hosts``: host names (or IP literals) fetched wherever they resolve, as written in
    URLs (case and a trailing dot do not matter). ``allow_private``: no check at all.
    """

    allow_hosts: frozenset[str] = frozenset()
    allow_private: bool = False

    @classmethod
    def allowing(cls, hosts: Iterable[str] = (), *, private: bool = False) -> FetchPolicy:
        """A policy allowing ``hosts`` (normalised: lower case, no brackets or trailing dot)."""
        return cls(frozenset(_host_key(host) for host in hosts if host.strip()), private)

    def allows_host(self, host: str) -> bool:
        """True if requests to ``host`` skip the address check."""
        return self.allow_private or _host_key(host) in self.allow_hosts


def _host_key(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def refusal(address: IPAddress) -> str | None:
    """Why ``http.fetch`` does not connect to ``address`` by default, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(address.packed[-4:])
        if embedded is not None:
            reason = refusal(embedded)
            return None if reason is None else f"{reason} ({embedded}, written as IPv6)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:  # connecting to it reaches this machine
        return "the unspecified address (this machine)"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address.is_private:
        return "a private address"
    if not address.is_global or address.is_multicast:
        return "not a public address"
    return None


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends each request to a checked address of its host (see the
    module docstring). Raises ``AddressNotAllowed`` naming the host, the address and how to
    allow it; ``httpx.ConnectError`` when the host does not resolve.

    One inner transport per host name: a connection is reused only for the name whose
    certificate it checked, even when two names share an address.
    """

    def __init__(self, policy: FetchPolicy, ssl_context: ssl.SSLContext) -> None:
        self._policy = policy
        self._ssl_context = ssl_context
        self._transports: dict[str, httpx.AsyncHTTPTransport] = {}

    def _transport(self, host: str) -> httpx.AsyncHTTPTransport:
        transport = self._transports.get(host)
        if transport is None:
            transport = httpx.AsyncHTTPTransport(verify=self._ssl_context, trust_env=False)
            self._transports[host] = transport
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        transport = self._transport(host)
        if self._policy.allows_host(host):
            return await transport.handle_async_request(request)
        addresses = await _resolve(request)
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise AddressNotAllowed(
                    f"http.fetch does not connect to {host!r}: it resolves to {address}, {reason};"
                    f" to allow it, start taskcast with --fetch-allow {_host_key(host)}"
                    " (or --fetch-allow-private to allow every address)"
                )
        if _is_literal(host):
            return await transport.handle_async_request(request)
        failure: httpx.ConnectError | None = None
        for address in addresses:  # in the resolver's order, as a plain connect tries them
            try:
                pinned = _pinned(request, address, request.url.raw_host.decode("ascii"))
                return await transport.handle_async_request(pinned)
            except httpx.ConnectError as error:
                failure = error
        assert failure is not None
        raise failure

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.aclose()


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _resolve(request: httpx.Request) -> list[IPAddress]:
    """The addresses of the request's host, in the resolver's order, without duplicates."""
    host = request.url.raw_host.decode("ascii")  # IDNA-encoded, as DNS knows it
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise httpx.ConnectError(f"cannot resolve {host!r}: {error}", request=request) from None
    addresses: dict[IPAddress, None] = {}
    for *_, sockaddr in infos:
        # A scoped IPv6 address ("fe80::1%eth0") is link-local whatever its scope.
        addresses[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(addresses)


def _pinned(request: httpx.Request, address: IPAddress, host: str) -> httpx.Request:
    """``request`` sent to ``address``, still naming ``host`` in its ``Host`` header (kept from
    the original headers) and in TLS (SNI, and the name the certificate must match)."""
    return httpx.Request(
        request.method,
        request.url.copy_with(host=str(address)),
        headers=request.headers,
        stream=request.stream,
        extensions={**request.extensions, "sni_hostname": host},
    )
