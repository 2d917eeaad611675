"""Media attributes of data rows: read an asset's headers through its storage and record
``width``/``height``/``duration``/``frameRate``/``pageCount``/``mimeType``/``size``.

Which storage reads a row's URI is what resolving says (``resolve.matching``): the storage
that synced the row, else a source storage of the row's dataset holding the URI's bucket
(or container, or folder) and prefix, else the organization's managed storage of uploads.

Plain ``http(s)://`` URLs are read only when ``TETHER_PROBE_HTTP_URLS`` is on, through the
outbound-URL guard (``resolve.http_assets``).

Merging (``merged``): the measured facts (width, height, duration, frameRate, pageCount,
size) are written over what the row had; ``mimeType`` is filled only where the row has none
(a sync sets one from the extension, an import may bring one); every other key stays.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, select, update

from tether.catalog.media import asset_uri_of_task
from tether.config import Settings
from tether.db.tables import data_rows
from tether.errors import TetherError
from tether.resolve import matching, uris
from tether.resolve.headers import Unreadable, attributes_of
from tether.resolve.http_assets import TIMEOUT, http_file
from tether.resolve.ranged import RangedFile
from tether.storages.base import ObjectNotFound, Storage
from tether.sync.connections import StorageRecord, open_backend, to_record

# What a row of each media type must have for the probe to leave it alone.
NEEDED = {
    "IMAGE": ("width", "height"),
    "VIDEO": ("duration",),
    "AUDIO": ("duration",),
    "PDF": ("pageCount",),
}
MEASURED = ("width", "height", "duration", "frameRate", "pageCount", "size")
HTTP = ("http://", "https://")


class Skipped(Exception):
    """A row the probe leaves alone, not an error (a plain URL while those are off)."""


def lacks_attributes(media_type: str, attributes: dict[str, Any]) -> bool:
    return any(key not in attributes for key in NEEDED.get(media_type, ()))


def merged(existing: dict[str, Any], probed: dict[str, Any]) -> dict[str, Any]:
    out = {**existing, **{k: v for k, v in probed.items() if k in MEASURED}}
    if "mimeType" in probed and not existing.get("mimeType"):
        out["mimeType"] = probed["mimeType"]
    return out


@dataclass
class Located:
    record: StorageRecord
    key: str


@dataclass
class Prober:
    """What probing the rows of one organization holds on to: the storages it opened (once
    each) and one HTTP client. Use it as a context manager."""

    settings: Settings
    org_id: int
    _backends: dict[int, Storage] = field(default_factory=dict)
    _records: dict[int, StorageRecord] = field(default_factory=dict)
    _http: httpx.Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: object) -> None:
        for backend in self._backends.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()
        if self._http is not None:
            self._http.close()

    def backend(self, record: StorageRecord) -> Storage:
        with self._lock:
            found = self._backends.get(record.id)
            if found is None:
                found = self._backends[record.id] = open_backend(self.settings, record)
            return found

    def locate(self, row: Any, candidates: matching.Candidates) -> Located | str:
        """Where the row's asset is read from: a storage and key, or a plain URL
        (``Unreadable``, ``Skipped``). ``candidates``: ``self.candidates`` of the rows at
        hand; the storage is found as resolving finds it (``resolve.matching``)."""
        uri = orjson.loads(row.row_data)
        if isinstance(uri, dict):  # a Label Studio task: its asset of the row's media type
            uri = asset_uri_of_task(uri, row.media_type)
        if not isinstance(uri, str):
            raise Skipped(f"its data holds no URI of its {row.media_type.lower()} asset")
        parsed = uris.parse(uri)
        if isinstance(parsed, uris.Direct):
            if not self.settings.probe_http_urls:
                raise Skipped("plain URLs are not probed (TETHER_PROBE_HTTP_URLS is off)")
            return uri
        no_storage = Unreadable("no_storage", "no storage of the dataset holds this URI")
        if parsed is None or isinstance(parsed, uris.Unknown):
            raise no_storage
        found = matching.find(self.settings, candidates.ordered(row.id, row.dataset_id), parsed)
        if found is None:
            raise no_storage
        candidate, key = found
        return Located(self._record(candidate), candidate.object_key(self.settings, parsed, key))

    def candidates(self, conn: Connection, rows: list[Any]) -> matching.Candidates:
        """The storages that may hold a chunk of rows' assets (two queries)."""
        return matching.load(conn, self.org_id, [(row.id, row.dataset_id) for row in rows])

    def _record(self, candidate: matching.Candidate) -> StorageRecord:
        with self._lock:
            found = self._records.get(candidate.id)
            if found is None:
                found = self._records[candidate.id] = to_record(self.settings, candidate.row)
            return found

    def attributes(self, where: Located | str, existing: str | None) -> dict[str, Any]:
        """The media attributes after probing the asset (``Unreadable``): what the row had
        (``existing``, its JSON) completed. Safe to call from several threads."""
        file = self._open(where)
        try:
            probed = attributes_of(file)
        finally:
            file.close()
        return merged(orjson.loads(existing) if existing else {}, probed)

    def _open(self, where: Located | str) -> RangedFile:
        budget = self.settings.probe_max_bytes
        try:
            if isinstance(where, str):
                with self._lock:
                    if self._http is None:
                        self._http = httpx.Client(timeout=TIMEOUT, follow_redirects=False)
                return http_file(self._http, where, self.settings.allowlist, budget)
            return storage_file(self.backend(where.record), where.key, budget)
        except ObjectNotFound as exc:
            raise Unreadable("object_not_found", exc.message) from None
        except TetherError as exc:  # the backend's errors, and the outbound-URL guard's
            raise Unreadable(exc.code, exc.message) from None


def storage_file(storage: Storage, key: str, budget: int) -> RangedFile:
    """A ``RangedFile`` of an object, read with ranged reads through its backend."""
    size = storage.stat(key).size

    def fetch(start: int, end: int) -> bytes:
        return b"".join(storage.read(key, start=start, end=end))

    return RangedFile(fetch, size, budget=budget)


def write_attributes(conn: Connection, row: Any, attributes: dict[str, Any]) -> bool:
    """The one write of the probe: the row's ``media_attributes`` (and ``updated_at``), only
    if its data and attributes are still what was probed (a sync may have changed them
    since). Whether it was written."""
    was = data_rows.c.media_attributes
    same = was.is_(None) if row.media_attributes is None else was == row.media_attributes
    done = conn.execute(
        update(data_rows)
        .where(data_rows.c.id == row.id, data_rows.c.row_data == row.row_data, same)
        .values(media_attributes=orjson.dumps(attributes).decode(), updated_at=datetime.now(UTC))
    )
    return bool(done.rowcount)


def rows_after(conn: Connection, dataset_id: int, after: int, limit: int) -> Iterator[Any]:
    """The dataset's rows of probed media types, in id order, after row ``after``."""
    yield from conn.execute(
        select(
            data_rows.c.id,
            data_rows.c.dataset_id,
            data_rows.c.global_key,
            data_rows.c.media_type,
            data_rows.c.row_data,
            data_rows.c.media_attributes,
        )
        .where(
            data_rows.c.dataset_id == dataset_id,
            data_rows.c.media_type.in_(tuple(NEEDED)),
            data_rows.c.id > after,
        )
        .order_by(data_rows.c.id)
        .limit(limit)
    ).all()
