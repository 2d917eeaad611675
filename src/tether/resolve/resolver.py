"""Resolving data rows: every URI a row holds, as a URL a browser can load.

For each row (as ``catalog.queries`` returns it) the answer is the row's ``row_data`` and
``attachments`` in the same shape with URLs in place of URIs (the stored row never
changes), the URIs left as they are with the reason (``unresolved``, each at its JSON
Pointer in the row), and when the first of the URLs expires.

Per storage (``matching`` says which): ``use_signed_urls`` on and a backend that can sign
-> the store's own signed HTTPS URL; otherwise, and always for local files, a tether URL
carrying a short-lived token (``resolve.urls``). Both live ``signed_url_ttl_minutes``.
``http(s)://`` URLs stay as they are: tether never fetches them.

Opening a backend decrypts secrets (and may assume an IAM role), and signing costs a
little: both are cached in the process (``resolve.cache``), keyed by the storage's id and
``updated_at`` so an edited storage is never served from its old form.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from tether.config import Settings
from tether.errors import TetherError
from tether.resolve import urls
from tether.resolve.cache import LRU, MAX_BACKENDS, ExpiringURLs, margin
from tether.resolve.matching import Candidate, find, load
from tether.resolve.uris import (
    Direct,
    LocalFileURI,
    ObjectURI,
    Parsed,
    Unknown,
    UploadURI,
    parse,
)
from tether.storages.base import Storage
from tether.sync.connections import open_backend, to_record
from tether.timeutil import iso

# The attachment types whose value names an asset; any other attachment whose value is a
# URI is resolved too (a TEXT attachment of inline text is left alone: it is no URI).
URL_ATTACHMENTS = ("IMAGE", "VIDEO", "IMAGE_OVERLAY", "TEXT_URL", "PDF_URL", "HTML")
NEVER_SIGNS = ("local", "redis", "memory")  # backends whose sign() is always None
MAX_DEPTH = 64  # row_data nested deeper than this is returned as it is, unresolved


@dataclass
class _Row:
    """What resolving one row gathers as it walks it."""

    candidates: list[Candidate]
    broken: dict[int, str]  # storage id -> why it cannot make URLs (shared by one call's rows)
    unresolved: list[dict[str, str]] = field(default_factory=list)
    expires: float | None = None

    def expiring(self, at: float) -> None:
        self.expires = at if self.expires is None else min(self.expires, at)


class Resolver:
    """Resolves rows for one server (its settings, its secret key); holds the caches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._backends: LRU[Storage] = LRU(MAX_BACKENDS)
        self._urls = ExpiringURLs()

    def resolve(
        self, conn: Connection, org_id: int, rows: Iterable[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The ``resolved`` answer of each row, in order. Rows must be the organization's
        (the caller read them scoped by it); storages are always read scoped by it."""
        rows = list(rows)
        candidates = load(conn, org_id, [(r["id"], r["dataset_id"]) for r in rows])
        out = []
        broken: dict[int, str] = {}  # a storage that fails once is not tried again per URI
        for row in rows:
            state = _Row(candidates.ordered(row["id"], row["dataset_id"]), broken)
            row_data = self._walk(org_id, state, row.get("row_data"), "/row_data")
            attachments = [
                self._attachment(org_id, state, item, f"/attachments/{i}")
                for i, item in enumerate(row.get("attachments") or [])
            ]
            out.append(
                {
                    "row_data": row_data,
                    "attachments": attachments,
                    "unresolved": state.unresolved,
                    "expires_at": _iso(state.expires),
                }
            )
        return out

    # -- walking a row -------------------------------------------------------------------

    def _walk(self, org_id: int, state: _Row, value: Any, at: str, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self._value(org_id, state, value, at)
        if depth >= MAX_DEPTH:  # JSON may nest deeper than Python recurses; tasks never do
            return value
        if isinstance(value, dict):
            return {
                k: self._walk(org_id, state, v, f"{at}/{_escape(k)}", depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self._walk(org_id, state, v, f"{at}/{i}", depth + 1) for i, v in enumerate(value)
            ]
        return value

    def _attachment(self, org_id: int, state: _Row, item: Any, at: str) -> Any:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            return item
        return {**item, "value": self._value(org_id, state, item["value"], f"{at}/value")}

    def _value(self, org_id: int, state: _Row, value: str, at: str) -> str:
        """``value`` as a browser loads it: a URL in place of a URI; a URI left as it is is
        recorded as unresolved; inline text and http(s) URLs come back unchanged."""
        parsed = parse(value)
        if parsed is None or isinstance(parsed, Direct):
            return value
        try:
            url, expires = self._url(org_id, state, parsed)
        except _Unresolved as exc:
            state.unresolved.append({"uri": value, "at": at, "reason": exc.reason})
            return value
        state.expiring(expires)
        return url

    # -- one URI ---------------------------------------------------------------------------

    def _url(self, org_id: int, state: _Row, parsed: Parsed) -> tuple[str, float]:
        if isinstance(parsed, Unknown):
            raise _Unresolved(parsed.reason)
        if isinstance(parsed, LocalFileURI) and not (
            self.settings.local_files_serving_enabled and self.settings.local_files_document_root
        ):
            raise _Unresolved("local file serving is off on this server")
        match = find(self.settings, state.candidates, parsed)
        if match is None:
            raise _Unresolved(_no_storage(parsed))
        candidate, key = match
        cache_key: Hashable = (org_id, candidate.id, candidate.updated_at, key)
        found = self._urls.get(cache_key, margin(candidate.ttl_seconds))
        if found is not None:
            return found
        if candidate.id in state.broken:
            raise _Unresolved(state.broken[candidate.id])
        expires = int(time.time()) + candidate.ttl_seconds  # no later than the URL's own
        try:
            url = self._make(org_id, state, candidate, key, parsed)
        except TetherError as exc:  # a key the store refuses: this URI only
            raise _Unresolved(f"storage {candidate.id}: {exc.message}") from None
        self._urls.put(cache_key, url, expires)
        return url, expires

    def _make(
        self, org_id: int, state: _Row, candidate: Candidate, key: str, parsed: Parsed
    ) -> str:
        ttl = candidate.ttl_seconds
        if isinstance(parsed, LocalFileURI):
            return urls.local_file_url(self.settings, org_id, key, ttl)
        if candidate.use_signed_urls and candidate.type not in NEVER_SIGNS:
            signed = self._opened(candidate, state).sign(key, timedelta(seconds=ttl))
            if signed is not None:
                return signed
        return urls.proxy_url(self.settings, org_id, candidate.id, key, ttl)

    def _opened(self, candidate: Candidate, state: _Row) -> Storage:
        """``backend``, or ``_Unresolved`` (remembered for the rest of the call) when the
        storage cannot be opened: its config, its credentials, the outbound-URL guard."""
        try:
            return self.backend(candidate)
        except TetherError as exc:
            reason = f"storage {candidate.id} cannot be opened: {exc.message}"
        except Exception as exc:  # a stored config no backend takes is the user's, not a 500
            reason = f"storage {candidate.id} cannot be opened ({type(exc).__name__})"
        state.broken[candidate.id] = reason
        raise _Unresolved(reason)

    def backend(self, candidate: Candidate) -> Storage:
        """The storage's opened backend, from the cache while the storage is unchanged."""

        def make() -> Storage:
            return open_backend(self.settings, to_record(self.settings, candidate.row))

        return self._backends.get_or_make((candidate.id, candidate.updated_at), make)

    def clear(self) -> None:
        """Forget every cached backend and URL (benchmarks measure the uncached path)."""
        self._backends.clear()
        self._urls.clear()


class _Unresolved(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _no_storage(parsed: Parsed) -> str:
    if isinstance(parsed, UploadURI):
        return "the organization has no managed storage of uploads holding it"
    if isinstance(parsed, LocalFileURI):
        return "no local storage of the row's dataset covers this file"
    assert isinstance(parsed, ObjectURI)
    return (
        f"no storage of the row's dataset holds {parsed.type} {parsed.container!r} under a "
        "matching prefix (connect it as a source storage of the dataset)"
    )


def _escape(key: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return iso(datetime.fromtimestamp(moment, UTC))


_SHARED: dict[int, tuple[Settings, Resolver]] = {}  # id(settings) -> (it, its resolver)
_SHARED_LOCK = threading.Lock()


def shared(settings: Settings) -> Resolver:
    """The process's resolver for a server's settings object (a server has one for its
    life): its cached backends were opened under those settings' rules (the outbound-URL
    guard, ambient credentials), so another settings object never gets them."""
    known = _SHARED.get(id(settings))
    if known is not None and known[0] is settings:
        return known[1]
    with _SHARED_LOCK:
        known = _SHARED.get(id(settings))
        if known is None or known[0] is not settings:
            known = _SHARED[id(settings)] = (settings, Resolver(settings))  # kept: no id reuse
        return known[1]
