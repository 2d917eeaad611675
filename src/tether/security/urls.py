"""The one outbound-URL guard: every URL tether fetches on the server side (storage
endpoints, media probing, URL attachments) is checked here first.

A URL passes when its scheme is http or https and every address its host resolves to is a
public unicast address -- or when the operator allowed it in ``TETHER_OUTBOUND_ALLOWLIST``
(comma-separated ``host``, ``host:port`` or CIDR entries). Refused: loopback, private,
link-local, shared (CGNAT), multicast, reserved and unspecified addresses, IPv6 unique-local
and link-local ones, and IPv4 addresses hidden in IPv6 (mapped, 6to4, Teredo, NAT64) that
are any of those. Cloud metadata services live at such addresses (169.254.169.254,
fd00:ec2::254, 100.100.100.200, 192.0.0.192) and are named in messages.

The addresses are resolved here; a caller that connects should connect to
``CheckedURL.addresses`` (not resolve the name again), so a DNS answer that changes between
the check and the request cannot lead elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from tether.errors import Invalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Iterable[str]]
SCHEMES = {"http": 80, "https": 443}
METADATA_ADDRESSES = {
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
}
SHARED = ipaddress.ip_network("100.64.0.0/10")  # CGNAT: not private, not global either
PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(Invalid):
    """A URL the server must not fetch."""

    code = "unsafe_url"


@dataclass(frozen=True)
class Allowlist:
    """What the operator lets tether reach although it is not public."""

    hosts: frozenset[str] = frozenset()
    host_ports: frozenset[tuple[str, int]] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Allowlist:
        """``"minio.internal, 10.0.0.0/8, [fd00::5]:9000, db:5432"``; raises ``ValueError``."""
        hosts: set[str] = set()
        host_ports: set[tuple[str, int]] = set()
        networks: list[IPNetwork] = []
        for raw in (text or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f"allowlist entry {entry!r} is not a CIDR range") from None
                continue
            host, port = _split_entry(entry)
            if port is None:
                hosts.add(host)
            else:
                host_ports.add((host, port))
        return cls(frozenset(hosts), frozenset(host_ports), tuple(networks))

    def allows_host(self, host: str, port: int) -> bool:
        return host in self.hosts or (host, port) in self.host_ports

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class CheckedURL:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]  # what to connect to; empty when the host was allowlisted


def check_url(
    url: str, allowlist: Allowlist | None = None, resolve: Resolver | None = None
) -> CheckedURL:
    """``url`` if the server may fetch it, else ``UnsafeURL`` saying why."""
    allowlist = allowlist or Allowlist()
    scheme, host, port = _parse(url)
    if allowlist.allows_host(host, port):
        return CheckedURL(url, scheme, host, port, ())
    addresses = _resolve(host, port, resolve or _system_resolve)
    for address in addresses:
        if not allowlist.allows_address(address):
            reason = refusal_reason(address)
            if reason:
                # A name's address is not told back: callers could map internal DNS so.
                what = f"{host} is" if host == str(address) else f"{host} resolves to"
                raise UnsafeURL(
                    f"{what} {reason}; list it in TETHER_OUTBOUND_ALLOWLIST to allow it",
                    {"url": url},
                )
    return CheckedURL(url, scheme, host, port, tuple(str(a) for a in addresses))


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or ``None`` when it is one."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = refusal_reason(embedded)
        return f"an IPv6 address embedding {inner}" if inner else None
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (any(address in n for n in PRIVATE), "a private address"),
        (address in SHARED, "a shared (CGNAT) address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _parse(url: str) -> tuple[str, str, int]:
    if any(ord(c) <= 32 or ord(c) == 127 for c in url) or "\\" in url:
        raise UnsafeURL(
            "the URL contains whitespace, a control character or a backslash", {"url": url}
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"the URL does not parse: {exc}", {"url": url}) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UnsafeURL("only http and https URLs can be fetched", {"url": url})
    if "@" in parts.netloc:
        raise UnsafeURL("the URL must not carry a user name or password", {"url": url})
    host = _normal_host(parts.hostname or "")
    if not host:
        raise UnsafeURL("the URL has no host", {"url": url})
    return scheme, host, port if port is not None else SCHEMES[scheme]


def _normal_host(host: str) -> str:
    host = host.rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeURL(f"{host!r} is not a valid host name") from None


def _split_entry(entry: str) -> tuple[str, int | None]:
    host, port_text = entry, None
    if entry.startswith("["):
        inner, bracket, rest = entry[1:].partition("]")
        host, port_text = inner, (rest[1:] if rest.startswith(":") else None)
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"allowlist entry {entry!r} is not host, host:port or CIDR")
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
    if port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"allowlist entry {entry!r} has a bad port")
    try:
        normal = _normal_host(host)
    except UnsafeURL:
        raise ValueError(f"allowlist entry {entry!r} is not a valid host") from None
    if not normal:
        raise ValueError(f"allowlist entry {entry!r} has no host")
    return normal, int(port_text) if port_text is not None else None


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]  # a literal (normalised by _parse): no lookup
    except ValueError:
        pass
    try:
        found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"{host} does not resolve: {exc}", {"host": host}) from None
    if not found:
        raise UnsafeURL(f"{host} resolves to no address", {"host": host})
    return found


def _system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
