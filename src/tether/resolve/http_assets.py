"""Ranged HTTP reads of a plain ``https://`` asset, for media probing where the operator
allows it (``TETHER_PROBE_HTTP_URLS``).

The URL goes through the outbound-URL guard first, and the requests connect to the address
the guard checked (``CheckedURL.addresses``; the name stays in the Host header and the TLS
server name), so a DNS answer that changes afterwards cannot lead the server elsewhere.
Redirects are not followed (their target was never checked). A server that ignores
``Range`` answers 200: then only the first bytes up to the block asked for are read, within
the probe's budget.
"""

from __future__ import annotations

import re

import httpx

from tether.resolve.headers import Unreadable
from tether.resolve.ranged import BLOCK, BudgetExceeded, RangedFile
from tether.security.urls import Allowlist, CheckedURL, check_url

_TOTAL = re.compile(r"bytes \d+-\d+/(\d+)$")
TIMEOUT = httpx.Timeout(10.0)


def http_file(client: httpx.Client, url: str, allowlist: Allowlist, budget: int) -> RangedFile:
    """A ``RangedFile`` of the asset at ``url`` (``UnsafeURL`` when the guard refuses it,
    ``Unreadable`` when the server does not give it)."""
    checked = check_url(url, allowlist)
    target, headers, extensions = _pinned(checked)

    def fetch(start: int, end: int) -> bytes:
        return _get(client, target, headers, extensions, start, end, budget)[0]

    first, size = _get(client, target, headers, extensions, 0, BLOCK, budget)
    file = RangedFile(fetch, size, budget=budget)
    file.prime(0, first)
    return file


def _pinned(checked: CheckedURL) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    url = httpx.URL(checked.url)
    if not checked.addresses:  # an allowlisted name: the operator's own DNS
        return url, {}, {}
    host = url.netloc.decode("ascii")
    return url.copy_with(host=checked.addresses[0]), {"Host": host}, {"sni_hostname": url.host}


def _get(
    client: httpx.Client,
    url: httpx.URL,
    headers: dict[str, str],
    extensions: dict[str, str],
    start: int,
    end: int,
    budget: int,
) -> tuple[bytes, int]:
    """The bytes ``start:end`` and the asset's size."""
    ranged = {**headers, "Range": f"bytes={start}-{end - 1}"}
    try:
        with client.stream("GET", url, headers=ranged, extensions=extensions) as response:
            if response.status_code == 206:
                found = _TOTAL.match(response.headers.get("content-range", ""))
                data = _take(response, end - start)
                return data, int(found.group(1)) if found else start + len(data)
            if response.status_code == 200:  # the server ignores Range: read the start only
                if end > budget:
                    raise BudgetExceeded(
                        f"the server ignores Range and {end} bytes are past the budget"
                    )
                size = int(response.headers.get("content-length") or 0)
                data = _take(response, end)
                return data[start:end], max(size, len(data))
            if response.status_code == 416:
                return b"", start
            raise Unreadable(
                "object_not_found" if response.status_code == 404 else "http_error",
                f"GET answered {response.status_code}",
            )
    except httpx.HTTPError as exc:
        raise Unreadable("unreachable", f"GET failed: {type(exc).__name__}: {exc}") from None


def _take(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (a server may send more than it was asked)."""
    parts: list[bytes] = []
    taken = 0
    for chunk in response.iter_bytes():
        parts.append(chunk)
        taken += len(chunk)
        if taken >= limit:
            break
    return b"".join(parts)[:limit]
