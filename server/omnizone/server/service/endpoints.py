"""Where the server may connect when a shopper hands it a URL: public hosts only.

A Web Push subscription is a URL the server later posts to, so without a
check any shopper could make the server connect to ``https://127.0.0.1:…``
or a host on the shop's private network (blind SSRF). ``EndpointGuard``
resolves the host and refuses loopback, private, link-local, multicast,
reserved and other non-global addresses (the ``ipaddress`` module's
``is_global``), unless the host or address is on the allow-list
(``OMNIZONE_PUSH_ENDPOINT_ALLOW``: host names, addresses or networks such as
``10.0.0.0/8``). It is asked when a subscription is stored and again at every
connection (``adapters/webpush.py`` connects to the very address that passed),
so a name that later resolves elsewhere (DNS rebinding) is refused too.
"""

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class EndpointRefused(ValueError):
    """The endpoint's host is not public and not on the allow-list."""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def why_not_public(address: IpAddress) -> str | None:
    """None for a public (globally routable unicast) address, else what it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return why_not_public(address.ipv4_mapped)
    for name in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    return None if address.is_global else "not globally routable"


class EndpointGuard:
    """Public hosts only, unless allowed; see the module's description."""

    def __init__(self, allow: Iterable[str] = (), *, resolve: Resolver = resolve_host) -> None:
        self._hosts: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allow:
            text = entry.strip()
            try:
                self._networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                self._hosts.add(text.lower().rstrip("."))
        self._resolve = resolve

    def _allowed(self, address: IpAddress) -> bool:
        return any(address in network for network in self._networks)

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` the server may connect to; raises
        ``EndpointRefused`` when one of them is not allowed (a mix is refused:
        the connection could pick either) or, unless ``host`` is allowed by
        name, when it resolves to nothing. ``OSError`` when resolution fails."""
        name = host.lower().rstrip(".").strip("[]")
        if name in self._hosts:
            return list(self._resolve(name, port))
        try:
            literal: IpAddress | None = ipaddress.ip_address(name)
        except ValueError:
            literal = None
        found = [name] if literal is not None else list(self._resolve(name, port))
        if not found:
            raise EndpointRefused(f"host {host!r} resolves to no address")
        for text in found:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            reason = why_not_public(address)
            if reason is not None and not self._allowed(address):
                raise EndpointRefused(
                    f"host {host!r} is {address} ({reason}): the server only connects to "
                    "public addresses (an operator may allow others with "
                    "OMNIZONE_PUSH_ENDPOINT_ALLOW)"
                )
        return found

    def check_url(self, url: str, *, unresolved_ok: bool = True) -> None:
        """Refuse a URL whose host is not allowed. A name that does not resolve
        now is let through when ``unresolved_ok``: every connection is checked
        again anyway."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise EndpointRefused(f"the port of {url[:200]!r} is not a number") from None
        try:
            self.addresses(host, port)
        except OSError as error:
            if not unresolved_ok:
                raise EndpointRefused(f"host {host!r} cannot be resolved: {error}") from None
