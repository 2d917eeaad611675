"""The outbound-URL guard, table-driven: schemes, hostile addresses in every spelling the
system resolver accepts, and the operator's allowlist."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import pytest

from tether.config import Settings
from tether.security.urls import Allowlist, UnsafeURL, check_url, refusal_reason

# Addresses written as IP literals or in the numeric forms getaddrinfo() accepts: these go
# through the machine's real resolver.
REFUSED_URLS = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.8.9.10:9000/x", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://LOCALHOST./", "loopback"),
    ("http://2130706433/", "loopback"),  # decimal 127.0.0.1
    ("http://0x7f000001/", "loopback"),  # hexadecimal
    ("http://0177.0.0.1/", "loopback"),  # octal
    ("http://127.1/", "loopback"),  # short form
    ("http://[::1]/", "loopback"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://169.254.0.7/", "link-local"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://100.100.100.200/", "cloud metadata"),
    ("http://192.0.0.192/", "cloud metadata"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://100.127.255.254/", "CGNAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://[::ffff:127.0.0.1]/", "IPv6 address embedding a loopback"),
    ("http://[::ffff:a9fe:a9fe]/", "embedding a cloud metadata"),
    ("http://[::ffff:10.0.0.1]/", "embedding a private"),
    ("http://[2002:7f00:1::]/", "embedding a loopback"),  # 6to4
    ("http://[64:ff9b::a9fe:a9fe]/", "embedding a cloud metadata"),  # NAT64
    ("http://240.0.0.1/", "reserved"),
    ("http://192.0.2.10/", "not a public"),  # documentation range
    ("http://198.18.0.1/", "not a public"),  # benchmarking range
    ("http://255.255.255.255/", "reserved"),
    ("https://127.0.0.1:8443/", "loopback"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_internal_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=re.escape(reason)) as caught:
        check_url(url)
    assert caught.value.code == "unsafe_url" and caught.value.status == 422


PUBLIC_URLS = [
    ("http://8.8.8.8/", "http", "8.8.8.8", 80),
    ("https://1.1.1.1/dns-query", "https", "1.1.1.1", 443),
    ("HTTPS://93.184.216.34:8443/a?b=c", "https", "93.184.216.34", 8443),
    ("http://[2606:4700:4700::1111]/", "http", "2606:4700:4700::1111", 80),
    ("http://134744072/", "http", "134744072", 80),  # 8.8.8.8 in decimal: public is public
]


@pytest.mark.parametrize(("url", "scheme", "host", "port"), PUBLIC_URLS)
def test_public_addresses_pass_with_what_to_connect_to(
    url: str, scheme: str, host: str, port: int
) -> None:
    checked = check_url(url)
    assert (checked.scheme, checked.host, checked.port) == (scheme, host, port)
    assert checked.addresses and all(
        refusal_reason(ipaddress.ip_address(a)) is None for a in checked.addresses
    )


MALFORMED = [
    ("ftp://8.8.8.8/", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://8.8.8.8:70/", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("//8.8.8.8/", "only http and https"),
    ("8.8.8.8", "only http and https"),
    ("http:///path", "no host"),
    ("http://", "no host"),
    ("http://user:pw@8.8.8.8/", "user name or password"),
    ("http://169.254.169.254@8.8.8.8/", "user name or password"),
    ("http://8.8.8.8@169.254.169.254/", "user name or password"),
    ("http://8.8.8.8:99999/", "does not parse"),
    ("http://8.8.8.8:port/", "does not parse"),
    ("http://[::1/", "does not parse"),
    ("http://8.8.8.8\\@169.254.169.254/", "backslash"),
    ("http://8.8.8.8 /", "whitespace"),
    ("http://8.8.8.8/\x00", "control character"),
    ("http://exa\tmple.com/", "whitespace"),
    ("http://no-such-host.invalid/", "does not resolve"),
]


@pytest.mark.parametrize(("url", "reason"), MALFORMED)
def test_malformed_or_odd_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        check_url(url)


class Resolver:
    """A stand-in for DNS answers no real name gives on this offline machine (several
    addresses for one name, a public name pointing inward); records what it was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers, self.asked = answers, []  # type: list[str]

    def __call__(self, host: str, port: int) -> Iterable[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError("Name or service not known")
        return self.answers[host]


def test_every_resolved_address_must_pass() -> None:
    dns = Resolver(
        {
            "public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
            "mixed.example": ["93.184.216.34", "10.0.0.8"],
            "rebound.example": ["169.254.169.254"],
            "scoped.example": ["fe80::1%eth0"],
            "empty.example": [],
        }
    )
    assert check_url("https://public.example/", resolve=dns).addresses == (
        "93.184.216.34",
        "2606:2800:220:1:248:1893:25c8:1946",
    )
    with pytest.raises(UnsafeURL, match=r"mixed\.example resolves to a private address") as caught:
        check_url("https://mixed.example/", resolve=dns)
    assert "10.0.0.8" not in str(caught.value.to_dict())  # internal DNS is not told back
    with pytest.raises(UnsafeURL, match="cloud metadata"):
        check_url("http://rebound.example/", resolve=dns)
    with pytest.raises(UnsafeURL, match="link-local"):
        check_url("http://scoped.example/", resolve=dns)
    with pytest.raises(UnsafeURL, match="no address"):
        check_url("http://empty.example/", resolve=dns)
    assert dns.asked == [
        "public.example",
        "mixed.example",
        "rebound.example",
        "scoped.example",
        "empty.example",
    ]


def test_host_names_are_normalised_before_matching() -> None:
    dns = Resolver({"xn--bcher-kva.example": ["93.184.216.34"], "minio.internal": ["10.0.0.9"]})
    assert check_url("http://Bücher.example/", resolve=dns).host == "xn--bcher-kva.example"
    allow = Allowlist.parse("minio.internal")
    assert check_url("http://MINIO.internal./", allow, resolve=dns).host == "minio.internal"


ALLOWLIST_CASES = [
    # (allowlist, url, allowed)
    ("minio.internal", "http://minio.internal:9000/b", True),
    ("minio.internal", "http://other.internal/", False),
    ("minio.internal:9000", "http://minio.internal:9000/", True),
    ("minio.internal:9000", "http://minio.internal:9001/", False),
    ("minio.internal:80", "http://minio.internal/", True),  # the scheme's default port
    ("minio.internal:443", "http://minio.internal/", False),
    ("10.0.0.0/8", "http://10.20.30.40/", True),
    ("10.0.0.0/8", "http://minio.internal/", True),  # resolves into the range
    ("10.0.0.0/8", "http://192.168.0.1/", False),
    ("10.0.0.9/32", "http://10.0.0.9:1234/", True),
    ("10.0.0.9", "http://10.0.0.9:1234/", True),
    ("10.0.0.9:9000", "http://10.0.0.9:9000/", True),
    ("10.0.0.9:9000", "http://10.0.0.9:9001/", False),
    ("127.0.0.1", "http://127.0.0.1:8080/", True),
    ("127.0.0.1", "http://localhost:8080/", False),  # a name is not its address
    ("localhost", "http://localhost:8080/", True),
    ("[::1]:9000", "http://[::1]:9000/", True),
    ("[::1]:9000", "http://[::1]:9001/", False),
    ("::1", "http://[::1]:9001/", True),
    ("fd00::/8", "http://[fd00:ec2::254]/", True),  # the operator's word wins
    ("169.254.169.254", "http://169.254.169.254/", True),
    (" a.example , minio.internal ,, ", "http://minio.internal/", True),
    ("", "http://minio.internal/", False),
]


@pytest.mark.parametrize(("allow", "url", "allowed"), ALLOWLIST_CASES)
def test_the_allowlist(allow: str, url: str, allowed: bool) -> None:
    dns = Resolver(
        {
            "minio.internal": ["10.0.0.9"],
            "other.internal": ["10.0.0.10"],
            "localhost": ["127.0.0.1", "::1"],
        }
    )
    if allowed:
        check_url(url, Allowlist.parse(allow), resolve=dns)
    else:
        with pytest.raises(UnsafeURL, match="TETHER_OUTBOUND_ALLOWLIST"):
            check_url(url, Allowlist.parse(allow), resolve=dns)


def test_an_allowlisted_range_does_not_cover_other_addresses_of_the_name() -> None:
    dns = Resolver({"split.internal": ["10.0.0.9", "127.0.0.1"]})
    with pytest.raises(UnsafeURL, match="resolves to a loopback address"):
        check_url("http://split.internal/", Allowlist.parse("10.0.0.0/8"), resolve=dns)


def test_the_allowlist_never_allows_another_scheme() -> None:
    with pytest.raises(UnsafeURL, match="only http and https"):
        check_url("ftp://minio.internal/", Allowlist.parse("minio.internal"))


BAD_ENTRIES = ["10.0.0.0/33", "not/a/range", "host:0", "host:70000", "host:port", "[::1", "[::1]x"]


@pytest.mark.parametrize("entry", BAD_ENTRIES)
def test_a_bad_allowlist_entry_fails_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError, match="allowlist entry"):
        Allowlist.parse(entry)
    with pytest.raises(ValueError, match="allowlist entry"):
        Settings(outbound_allowlist=entry)


def test_settings_expose_the_parsed_allowlist() -> None:
    settings = Settings(outbound_allowlist="minio.internal:9000, 10.0.0.0/8")
    assert settings.allowlist.host_ports == {("minio.internal", 9000)}
    assert settings.allowlist.networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert Settings().allowlist == Allowlist()
