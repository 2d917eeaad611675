"""Which storage resolves a URI, and the key it names there.

The candidates of a page of rows are read in two small queries: the storages that synced
the rows (``storage_links``) and the source storages of the rows' datasets (plus the
organization's managed storage of uploads) -- every one filtered by the caller's
organization, so another organization's storage is never a candidate, whatever a link says.

A storage matches a URI when its type and bucket/container (Redis: db number) are the
URI's and the key lies under its prefix. For a row, the storage that synced it comes first;
then the other candidates, the longest prefix first (the most specific connection).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, or_, select

from tether.config import Settings
from tether.db.tables import storage_links, storages
from tether.resolve.uris import LocalFileURI, ObjectURI, Parsed, UploadURI

_CONTAINER_FIELD = {"s3": "bucket", "gcs": "bucket", "azure_blob": "container", "memory": "bucket"}
_IN_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True, slots=True)
class Candidate:
    """A storage as resolving needs it: no secrets are decrypted until a backend is opened
    (``row`` is the stored row, kept for that)."""

    id: int
    type: str
    config: dict[str, Any]
    dataset_id: int | None
    role: str
    use_signed_urls: bool
    ttl_seconds: int
    updated_at: datetime
    row: Any = field(repr=False, compare=False)

    @property
    def managed(self) -> bool:
        return self.type == "local" and bool(self.config.get("managed"))

    @property
    def prefix(self) -> str:
        if self.type == "redis":
            return str(self.config.get("path") or "")
        if self.type in ("local", "memory"):
            return ""
        return str(self.config.get("prefix") or "")

    def key_of(self, settings: Settings, parsed: Parsed) -> str | None:
        """The key ``parsed`` names in this storage (for a local file: its ``d``), or None
        when this storage does not hold it."""
        if isinstance(parsed, UploadURI):
            return parsed.key if self.managed else None
        if isinstance(parsed, LocalFileURI):
            return parsed.d if self.type == "local" and _covers(settings, self, parsed.d) else None
        if not isinstance(parsed, ObjectURI) or parsed.type != self.type or self.managed:
            return None
        if self.type == "redis":
            same = str(self.config.get("db") or 0) == parsed.container
        else:
            same = str(self.config.get(_CONTAINER_FIELD[self.type]) or "") == parsed.container
        return parsed.key if same and parsed.key.startswith(self.prefix) else None

    def object_key(self, settings: Settings, parsed: Parsed, key: str) -> str:
        """The key of the object in this storage's backend, given what ``key_of`` found:
        for a local file, its path under the storage's folder (not under the root)."""
        if not isinstance(parsed, LocalFileURI):
            return key
        folder = _folder(settings, self)
        return key if folder == "." else key[len(folder) + 1 :]


def _folder(settings: Settings, candidate: Candidate) -> str:
    """A local storage's folder relative to the document root ("." for the root itself)."""
    root, path = settings.local_files_document_root, candidate.config.get("path")
    assert root is not None and path
    return os.path.relpath(os.path.realpath(path), os.path.realpath(root))


def _covers(settings: Settings, candidate: Candidate, d: str) -> bool:
    """Whether ``d`` (relative to the document root) lies in the local storage's folder."""
    root, path = settings.local_files_document_root, candidate.config.get("path")
    if root is None or candidate.managed or not path:
        return False
    relative = _folder(settings, candidate)
    if relative == ".":
        return True
    if relative.startswith(".."):
        return False
    return d.startswith(relative + "/")


def to_candidate(row: Any) -> Candidate:
    return Candidate(
        id=row.id,
        type=row.type,
        config=orjson.loads(row.config),
        dataset_id=row.dataset_id,
        role=row.role,
        use_signed_urls=bool(row.use_signed_urls),
        ttl_seconds=int(row.signed_url_ttl_minutes) * 60,
        updated_at=row.updated_at,
        row=row,
    )


@dataclass
class Candidates:
    """The storages that may resolve a page of rows' URIs."""

    by_id: dict[int, Candidate]
    links: dict[int, list[int]]  # data row id -> ids of the storages that synced it
    _orders: dict[tuple[tuple[int, ...], int], list[Candidate]] = field(default_factory=dict)

    def ordered(self, row_id: int, dataset_id: int) -> list[Candidate]:
        """The candidates for one row, in the order they are tried (rows of one dataset
        synced by the same storages share one list)."""
        linked_ids = self.links.get(row_id, [])
        key = (tuple(linked_ids), dataset_id)
        found = self._orders.get(key)
        if found is None:
            found = self._orders[key] = self._order(linked_ids, dataset_id)
        return found

    def _order(self, linked_ids: list[int], dataset_id: int) -> list[Candidate]:
        linked = [self.by_id[i] for i in linked_ids if i in self.by_id]
        rest = [
            c
            for c in self.by_id.values()
            if c.id not in linked_ids
            and (c.managed or (c.role == "source" and c.dataset_id == dataset_id))
        ]
        rest.sort(key=lambda c: (-len(c.prefix), c.id))
        return linked + rest


def find(
    settings: Settings, ordered: list[Candidate], parsed: Parsed
) -> tuple[Candidate, str] | None:
    """The first of a row's candidates that holds ``parsed``, and its key there."""
    for candidate in ordered:
        key = candidate.key_of(settings, parsed)
        if key is not None:
            return candidate, key
    return None


# Built once: SQLAlchemy then reuses their compiled form (building a statement per request
# costs more than running it). Expanding IN lists take any length, none included.
_LINKS = (
    select(storage_links.c.data_row_id, storage_links.c.storage_id)
    .where(storage_links.c.data_row_id.in_(bindparam("rows", expanding=True)))
    .distinct()
)
_STORAGES = (
    select(storages)
    .where(
        storages.c.org_id == bindparam("org"),
        or_(
            and_(
                storages.c.role == "source",
                storages.c.dataset_id.in_(bindparam("datasets", expanding=True)),
            ),
            and_(storages.c.type == "local", storages.c.dataset_id.is_(None)),  # managed
            storages.c.id.in_(bindparam("linked", expanding=True)),
        ),
    )
    .order_by(storages.c.id)
)


def load(conn: Connection, org_id: int, rows: Iterable[tuple[int, int]]) -> Candidates:
    """The candidates of rows given as (data row id, dataset id)."""
    pairs = list(rows)
    row_ids = [r for r, _ in pairs]
    links: dict[int, list[int]] = {}
    for start in range(0, len(row_ids), _IN_CHUNK):
        found = conn.execute(_LINKS, {"rows": row_ids[start : start + _IN_CHUNK]})
        for row_id, storage_id in found:
            links.setdefault(row_id, []).append(storage_id)
    linked = sorted({s for ids in links.values() for s in ids})
    dataset_ids = sorted({d for _, d in pairs})
    found_rows = conn.execute(
        _STORAGES, {"org": org_id, "datasets": dataset_ids, "linked": linked}
    ).all()
    by_id = {row.id: to_candidate(row) for row in found_rows}
    return Candidates(by_id, {r: sorted(ids) for r, ids in links.items()})
