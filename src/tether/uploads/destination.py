"""Where uploaded files go, and which keys may go there.

The destination is a source storage of the caller's organization: the one named, else the
only source storage of the dataset that can take files, else the organization's *managed
storage*. Anything that is not a source storage of the caller's organization is NotFound.

The managed storage is one ``storages`` row per organization, made at its first upload:
type ``local``, ``config = {"managed": true, "path": ...}``, no dataset. Its folder is
``<data_dir>/assets/org-<id>`` (derived from the organization when opened, see
``sync.connections.open_managed``, so a record cannot point it elsewhere), and it needs none
of the operator's local-serving settings: tether owns that folder. Its URIs are
``/data/upload/<key>`` (``storages.local.ManagedLocalStorage``); rows of files uploaded to
it keep those URIs, which issue 15's resolver streams back through tether.

Key layout: ``<key prefix><name>``, where the name is the file's path relative to the folder
given to ``tether upload`` (or its file name) and the prefix is the storage's own prefix
(with a ``/`` after it), or, in the managed storage, ``<dataset id>/`` (``files/`` for a
file uploaded for no dataset). A re-run therefore maps each file to the same key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, select

from tether.catalog import datasets
from tether.catalog.store import begin_writing
from tether.config import Settings
from tether.db.tables import organizations, storages
from tether.errors import Invalid, NotFound
from tether.storages.base import UploadsNotSupported, direct_child
from tether.sync.connections import (
    StorageRecord,
    get_record,
    insert_storage,
    managed_folder,
    to_record,
)

MANAGED_TITLE = "Uploaded files (managed by tether)"
NO_DATASET_FOLDER = "files/"
MAX_KEY_BYTES = 1024  # what S3 allows; GCS and Azure allow as much or more
_BAD_KEY_TEXT = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True, slots=True)
class Destination:
    record: StorageRecord
    key_prefix: str  # what every key of this upload starts with
    dataset_id: int | None

    @property
    def managed(self) -> bool:
        return is_managed(self.record)

    def public(self, settings: Settings) -> dict[str, object]:
        return {
            "storage_id": self.record.id,
            "type": self.record.type,
            "managed": self.managed,
            "dataset_id": self.dataset_id,
            "key_prefix": self.key_prefix,
            "max_asset_bytes": settings.max_asset_bytes,
        }


def is_managed(record: StorageRecord) -> bool:
    return record.type == "local" and bool(record.config.get("managed"))


def choose(
    conn: Connection,
    settings: Settings,
    org_id: int,
    user_id: int | None,
    dataset: int | str | None = None,
    storage_id: int | None = None,
) -> Destination:
    """The destination of an upload for ``dataset`` (id or name; None: no dataset) into
    ``storage_id`` (None: the dataset's one source storage, else the managed storage)."""
    dataset_id = int(datasets.get(conn, org_id, dataset)["id"]) if dataset is not None else None
    if storage_id is not None:
        record = upload_target(conn, settings, org_id, storage_id)
        if dataset_id is not None and not is_managed(record) and record.dataset_id != dataset_id:
            raise Invalid(
                f"storage {storage_id} is a source storage of another dataset, not of "
                f"dataset {dataset_id}",
                {"storage_id": storage_id, "dataset_id": dataset_id},
            )
    else:
        found = _dataset_storages(conn, settings, org_id, dataset_id) if dataset_id else []
        if len(found) > 1:
            ids = ", ".join(str(r.id) for r in found)
            raise Invalid(
                f"dataset {dataset_id} has {len(found)} source storages that take files "
                f"({ids}); name the one to upload to (storage=ID, --storage ID)",
                {"storage_ids": [r.id for r in found]},
            )
        record = found[0] if found else managed_storage(conn, settings, org_id, user_id)
    return Destination(record, key_prefix(record, dataset_id), dataset_id)


def upload_target(
    conn: Connection, settings: Settings, org_id: int, storage_id: int
) -> StorageRecord:
    """Storage ``storage_id`` if it is a source storage of the organization that can take
    files: another organization's, or a target storage, is NotFound; Redis is refused."""
    record = get_record(conn, settings, org_id, storage_id)
    if record.role != "source":
        raise NotFound(f"no source storage {storage_id}")
    if record.type == "redis":
        raise UploadsNotSupported(
            f"storage {storage_id} is a redis storage: it holds task JSON strings, not files; "
            "upload files to an s3, gcs, azure_blob or local storage (or name none: tether "
            "keeps them)",
            {"storage_id": storage_id},
        )
    if not record.treat_every_object_as_source_file:
        raise Invalid(
            f"storage {storage_id} reads each object as tasks JSON "
            "(treat_every_object_as_source_file is off): an uploaded file would be read as "
            "tasks, not become a row; upload to a storage that treats every object as a "
            "source file",
            {"storage_id": storage_id},
        )
    return record


def managed_storage(
    conn: Connection, settings: Settings, org_id: int, user_id: int | None
) -> StorageRecord:
    """The organization's managed storage, made on first use (once, however many uploads
    ask at the same time: the organization's row is locked while looking)."""
    if not settings.managed_uploads:
        raise Invalid(
            "this server keeps no uploaded files itself (TETHER_MANAGED_UPLOADS is off): "
            "add a source storage to the dataset and upload to it",
            code="no_upload_destination",
        )
    found = _find_managed(conn, settings, org_id)
    if found is not None:
        return found
    _lock_org(conn, org_id)
    found = _find_managed(conn, settings, org_id)
    if found is not None:
        return found
    folder = managed_folder(settings, org_id)
    storage_id = insert_storage(
        conn,
        settings,
        org_id=org_id,
        type_="local",
        fields={"managed": True, "path": str(folder.resolve())},
        title=MANAGED_TITLE,
        use_signed_urls=False,
        created_by=user_id,
    )
    return get_record(conn, settings, org_id, storage_id)


def key_prefix(record: StorageRecord, dataset_id: int | None) -> str:
    if is_managed(record):
        return f"{dataset_id}/" if dataset_id is not None else NO_DATASET_FOLDER
    prefix = record.prefix
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def check_key(record: StorageRecord, key: str) -> str:
    """``key`` if it is a safe object key that the storage's sync would see as its own (under
    its prefix, matching its regex filter, directly under the prefix when not recursive);
    else Invalid, saying why."""
    if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise _bad_key(key, f"a key is 1 to {MAX_KEY_BYTES} bytes of UTF-8")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad_key(key, "a key must be valid Unicode text") from None
    if key.startswith("/") or key.endswith("/"):
        raise _bad_key(key, "a key is a relative path and does not end in '/'")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise _bad_key(key, "a key may not hold an empty, '.' or '..' segment")
    if _BAD_KEY_TEXT.search(key):
        raise _bad_key(key, "a key may not hold a backslash or a control character")
    prefix = record.prefix
    if not key.startswith(prefix):
        raise _bad_key(key, f"the key is not under the storage's prefix {prefix!r}")
    if not record.recursive and not direct_child(prefix, key):
        raise _bad_key(
            key, "the storage is not recursive: a key must lie directly under its prefix"
        )
    if record.regex_filter and not _matches(record.regex_filter, key):
        raise _bad_key(
            key, f"the key does not match the storage's regex_filter {record.regex_filter!r}"
        )
    return key


def _matches(pattern: str, key: str) -> bool:
    try:
        return re.match(pattern, key) is not None
    except re.error:
        return False


def _bad_key(key: str, why: str) -> Invalid:
    return Invalid(f"object key {key!r}: {why}", {"key": key}, code="invalid_object_key")


def _dataset_storages(
    conn: Connection, settings: Settings, org_id: int, dataset_id: int
) -> list[StorageRecord]:
    rows = conn.execute(
        select(storages)
        .where(
            storages.c.org_id == org_id,
            storages.c.dataset_id == dataset_id,
            storages.c.role == "source",
            storages.c.type != "redis",
            storages.c.treat_every_object_as_source_file.is_(True),
        )
        .order_by(storages.c.id)
    ).all()
    return [to_record(settings, row) for row in rows]


def _find_managed(conn: Connection, settings: Settings, org_id: int) -> StorageRecord | None:
    rows = conn.execute(
        select(storages)
        .where(
            storages.c.org_id == org_id,
            storages.c.type == "local",
            storages.c.dataset_id.is_(None),
            storages.c.role == "source",
        )
        .order_by(storages.c.id)
    ).all()
    for row in rows:
        record = to_record(settings, row)
        if is_managed(record):
            return record
    return None


def _lock_org(conn: Connection, org_id: int) -> None:
    """Serialize the making of a managed storage: on PostgreSQL a row lock on the
    organization; on SQLite the write lock, taken now (``BEGIN IMMEDIATE``)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(organizations.c.id).where(organizations.c.id == org_id).with_for_update()
        )
    else:
        begin_writing(conn)
