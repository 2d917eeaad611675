"""Media attributes of data rows: read an asset's headers through its storage and record
``width``/``height``/``duration``/``frameRate``/``pageCount``/``mimeType``/``size``.

Which storage reads a row's URI (``storage_of``): the storage that synced the row (its link,
when that storage treats every object as a source file: the link's key is the asset's); else
a source storage of the row's dataset whose URIs the row's URI is one of (same scheme and
bucket/container/folder, key under its prefix: the backend's own ``uri(key)`` gives the URI
back). A small, self-contained match; ``resolve.resolver`` has the full one.

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
from urllib.parse import unquote

import httpx
import orjson
from sqlalchemy import Connection, select, update

from tether.config import Settings
from tether.db.tables import data_rows, storage_links, storages
from tether.errors import TetherError
from tether.resolve.headers import Unreadable, attributes_of
from tether.resolve.http_assets import TIMEOUT, http_file
from tether.resolve.ranged import RangedFile
from tether.storages.base import ObjectNotFound, Storage
from tether.sync.connections import StorageRecord, get_record, open_backend, to_record

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
    _sources: dict[int, list[StorageRecord]] = field(default_factory=dict)
    _records: dict[int, StorageRecord] = field(default_factory=dict)
    _broken: set[int] = field(default_factory=set)  # sources that could not be opened
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

    def locate(
        self, conn: Connection, row: Any, links: dict[int, tuple[int, str]] | None = None
    ) -> Located | str:
        """Where the row's asset is read from: a storage and key, or a plain URL
        (``Unreadable``, ``Skipped``). ``links``: ``self.links`` of the rows at hand."""
        uri = orjson.loads(row.row_data)
        if not isinstance(uri, str):
            raise Skipped("its data is not one URI")
        if uri.startswith(HTTP):
            if not self.settings.probe_http_urls:
                raise Skipped("plain URLs are not probed (TETHER_PROBE_HTTP_URLS is off)")
            return uri
        located = self.storage_of(conn, row, uri, links)
        if located is None:
            raise Unreadable("no_storage", "no storage of the dataset holds this URI")
        return located

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

    def links(self, conn: Connection, row_ids: list[int]) -> dict[int, tuple[int, str]]:
        """Row id -> (storage id, key) of those of the rows a storage synced as source files
        (one query for a chunk of rows)."""
        found = conn.execute(
            select(storage_links.c.data_row_id, storage_links.c.storage_id, storage_links.c.key)
            .join(storages, storage_links.c.storage_id == storages.c.id)
            .where(
                storage_links.c.data_row_id.in_(row_ids),
                storages.c.org_id == self.org_id,
                storages.c.treat_every_object_as_source_file.is_(True),
            )
        ).all()
        return {r.data_row_id: (r.storage_id, r.key) for r in found}

    def storage_of(
        self,
        conn: Connection,
        row: Any,
        uri: str,
        links: dict[int, tuple[int, str]] | None = None,
    ) -> Located | None:
        """The storage (and key) that reads ``uri``, the data of ``row``."""
        link = (self.links(conn, [row.id]) if links is None else links).get(row.id)
        if link is not None:
            return Located(self._record(conn, link[0]), link[1])
        for record in self._sources_of(conn, row.dataset_id):
            if record.id in self._broken:
                continue
            try:
                key = key_of(self.backend(record), record.prefix, uri)
            except TetherError:  # it cannot be opened: it holds nothing for the probe
                self._broken.add(record.id)
                continue
            if key is not None:
                return Located(record, key)
        return None

    def _record(self, conn: Connection, storage_id: int) -> StorageRecord:
        found = self._records.get(storage_id)
        if found is None:
            found = self._records[storage_id] = get_record(
                conn, self.settings, self.org_id, storage_id
            )
        return found

    def _sources_of(self, conn: Connection, dataset_id: int) -> list[StorageRecord]:
        found = self._sources.get(dataset_id)
        if found is None:
            rows = conn.execute(
                select(storages)
                .where(
                    storages.c.org_id == self.org_id,
                    storages.c.dataset_id == dataset_id,
                    storages.c.role == "source",
                )
                .order_by(storages.c.id)
            ).all()
            found = self._sources[dataset_id] = [to_record(self.settings, r) for r in rows]
        return found


def key_of(storage: Storage, prefix: str, uri: str) -> str | None:
    """The key of ``uri`` in ``storage`` (under ``prefix``), or None when it is not one of its
    URIs: the backend's ``uri(key)`` must give ``uri`` back."""
    base = storage.uri("x")[:-1]
    if not uri.startswith(base) or len(uri) == len(base):
        return None
    rest = uri[len(base) :]
    for key in dict.fromkeys((rest, unquote(rest))):
        try:
            if key.startswith(prefix) and storage.uri(key) == uri:
                return key
        except TetherError:
            continue
    return None


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
