"""Storage connections as stored: the record of one bucket, container, folder or Redis db,
and the live backend opened from it.

A connection's fields are split in two: the plain ones (bucket, prefix, endpoint, ...) are
kept as JSON in ``storages.config``; the write-only ones (keys, passwords, service-account
JSON) as one Fernet token in ``storages.secrets``. Only ``open_backend`` ever sees both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from tether.config import Settings
from tether.db.tables import organizations, storages
from tether.errors import NotFound
from tether.security import secrets as secret_box
from tether.security.urls import UnsafeURL, check_url
from tether.storages.base import Storage, config_error
from tether.storages.local import ManagedLocalStorage
from tether.storages.registry import open_storage

# The write-only fields of each type: never in a response, a log line or a job error.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "s3": ("access_key_id", "secret_access_key", "session_token"),
    "gcs": ("service_account_json",),
    "azure_blob": ("account_key",),
    "redis": ("password",),
    "local": (),
    "memory": (),
}
MANAGED_ASSETS = "assets"  # the data dir's folder of managed storages, one per organization
# Backends whose constructor takes ``allow_ambient_credentials``.
CLOUD_TYPES = ("s3", "gcs", "azure_blob")


@dataclass(frozen=True, slots=True)
class StorageRecord:
    """One row of ``storages``, with its secrets decrypted (keep it on the server side)."""

    id: int
    org_id: int
    dataset_id: int | None
    project_id: int | None
    role: str  # "source" | "target"
    type: str
    title: str
    config: dict[str, Any]
    secrets: dict[str, Any] = field(repr=False)  # never in a repr, a log line or an error
    regex_filter: str | None
    recursive: bool
    treat_every_object_as_source_file: bool
    use_signed_urls: bool
    signed_url_ttl_minutes: int
    remove_missing: bool
    sync_every_minutes: int | None
    next_sync_at: datetime | None
    last_sync_job_id: str | None
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    # Target storages only (0007_projects).
    can_delete_objects: bool = False
    auto_export: bool = True
    export_seq: int = 0  # 0009_export_seq: the change number of the project it holds up to

    @property
    def prefix(self) -> str:
        """What the sync lists: the key prefix of an object store; "" for Redis (whose
        backend is already scoped to its ``path``) and local folders (keys are relative)."""
        if self.type in ("redis", "local"):
            return ""
        return str(self.config.get("prefix") or "")

    def object_key(self, name: str) -> str:
        """The key of object ``name`` in a target, as Label Studio writes it: under the
        prefix (``<prefix>/<name>``; Redis: its ``path``; a local folder: in the folder), a
        prefix ending in ``/`` not doubled."""
        base = self.config.get("path") if self.type == "redis" else self.prefix
        base = str(base or "").rstrip("/")
        return f"{base}/{name}" if base else name


def split_fields(type_: str, fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain, secret) parts of a type's connection fields."""
    secret_names = SECRET_FIELDS.get(type_, ())
    plain = {k: v for k, v in fields.items() if k not in secret_names}
    secret = {k: v for k, v in fields.items() if k in secret_names and v not in (None, "")}
    return plain, secret


def seal(settings: Settings, secret: dict[str, Any]) -> str | None:
    return (
        secret_box.encrypt(settings.fernet_key(), orjson.dumps(secret).decode()) if secret else None
    )


def unseal(settings: Settings, token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    loaded: dict[str, Any] = orjson.loads(secret_box.decrypt(settings.fernet_key(), token))
    return loaded


def insert_storage(
    conn: Connection,
    settings: Settings,
    *,
    org_id: int,
    type_: str,
    fields: dict[str, Any],
    dataset_id: int | None = None,
    project_id: int | None = None,
    role: str = "source",
    title: str = "",
    regex_filter: str | None = None,
    recursive: bool = True,
    treat_every_object_as_source_file: bool = True,
    use_signed_urls: bool = True,
    signed_url_ttl_minutes: int = 15,
    remove_missing: bool = False,
    sync_every_minutes: int | None = None,
    can_delete_objects: bool = False,
    auto_export: bool = True,
    created_by: int | None = None,
) -> int:
    """Store a connection as given (no check, no remote call): the one insert of
    ``storages``; the service that creates storages validates before calling it."""
    plain, secret = split_fields(type_, fields)
    if plain.get("role_arn") and not plain.get("external_id"):
        plain["external_id"] = org_external_id(conn, org_id)
    now = datetime.now(UTC)
    return int(
        conn.execute(
            insert(storages)
            .values(
                org_id=org_id,
                dataset_id=dataset_id,
                project_id=project_id,
                role=role,
                type=type_,
                title=title,
                config=orjson.dumps(plain).decode(),
                secrets=seal(settings, secret),
                regex_filter=regex_filter,
                recursive=recursive,
                treat_every_object_as_source_file=treat_every_object_as_source_file,
                use_signed_urls=use_signed_urls,
                signed_url_ttl_minutes=signed_url_ttl_minutes,
                remove_missing=remove_missing,
                sync_every_minutes=sync_every_minutes,
                can_delete_objects=can_delete_objects,
                auto_export=auto_export,
                created_by=created_by,
                created_at=now,
                updated_at=now,
            )
            .returning(storages.c.id)
        ).scalar_one()
    )


def org_external_id(conn: Connection, org_id: int) -> str:
    """The sts:ExternalId tether passes when it assumes an IAM role for ``org_id``."""
    found = conn.execute(
        select(organizations.c.external_id).where(organizations.c.id == org_id)
    ).scalar_one_or_none()
    if not found:
        raise NotFound(f"no organization {org_id}")
    return str(found)


def get_record(conn: Connection, settings: Settings, org_id: int, storage_id: int) -> StorageRecord:
    """The organization's storage ``storage_id``; NotFound for another organization's."""
    row = conn.execute(
        select(storages).where(storages.c.id == storage_id, storages.c.org_id == org_id)
    ).first()
    if row is None:
        raise NotFound(f"no storage {storage_id}")
    return to_record(settings, row)


def to_record(settings: Settings, row: Any) -> StorageRecord:
    values = dict(row._mapping)
    values["config"] = orjson.loads(values["config"])
    values["secrets"] = unseal(settings, values["secrets"])
    return StorageRecord(**values)


def managed_folder(settings: Settings, org_id: int) -> Path:
    """The folder of an organization's managed storage: ``<data_dir>/assets/org-<id>``."""
    return settings.data_dir / MANAGED_ASSETS / f"org-{int(org_id)}"


def open_managed(settings: Settings, org_id: int) -> Storage:
    """The organization's managed storage (``uploads.destination``): its folder is derived
    from the organization alone, whatever its record says, so no record can point it
    elsewhere; local serving need not be on (tether owns the folder)."""
    folder = managed_folder(settings, org_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise config_error(f"cannot make the folder of uploaded files: {exc.strerror}") from None
    root = folder.parent.resolve()
    return ManagedLocalStorage(path=str(root / folder.name), document_root=str(root))


def open_backend(settings: Settings, record: StorageRecord, **overrides: Any) -> Storage:
    """The live backend of a connection, with the operator's rules applied: the server's
    own cloud identity only when ``TETHER_ALLOW_AMBIENT_CREDENTIALS`` is on, local folders
    only when local serving is on and only under the document root, a user's endpoint (or
    Redis host) only when the outbound-URL guard lets the server reach it, IAM roles
    assumed with the organization's external ID. ``overrides`` go to the backend as is
    (e.g. ``max_retries=0`` for a quick check). A managed storage (``config.managed``,
    tether's own folder of uploads) opens ``open_managed``."""
    if record.type == "local" and record.config.get("managed"):
        return open_managed(settings, record.org_id)
    kwargs: dict[str, Any] = {**record.config, **record.secrets}
    guard_endpoint(settings, record.type, kwargs)
    if record.type in CLOUD_TYPES:
        kwargs["allow_ambient_credentials"] = settings.allow_ambient_credentials
    if record.type == "s3":
        role_arn = kwargs.pop("role_arn", None)
        external_id = kwargs.pop("external_id", None)
        if role_arn:
            from tether.sync.sts import RoleCredentials

            provider = RoleCredentials(
                settings, role_arn, external_id or "", f"tether-{record.org_id}-{record.id}"
            )
            provider.current()  # fails here, in tether's words, rather than in the store
            kwargs["credential_provider"] = provider
    if record.type == "local":
        if not settings.local_files_serving_enabled:
            raise config_error(
                "local storages are off on this server "
                "(the operator sets TETHER_LOCAL_FILES_SERVING_ENABLED=true to allow them)"
            )
        if settings.local_files_document_root is None:
            raise config_error(
                "local storages need TETHER_LOCAL_FILES_DOCUMENT_ROOT, the folder they lie in"
            )
        kwargs["document_root"] = settings.local_files_document_root
    return open_storage(record.type, **{**kwargs, **overrides})


def guard_endpoint(settings: Settings, type_: str, config: dict[str, Any]) -> None:
    """``UnsafeURL`` unless the outbound-URL guard lets the server reach the endpoint a user
    gave (an internal address only when TETHER_OUTBOUND_ALLOWLIST lists it)."""
    if type_ == "redis":
        host = str(config.get("host") or "127.0.0.1")
        shown = f"[{host}]" if ":" in host else host
        url, name = f"http://{shown}:{int(config.get('port') or 6379)}/", "host"
    elif config.get("endpoint_url"):
        url, name = str(config["endpoint_url"]), "endpoint_url"
    else:
        return
    try:
        check_url(url, settings.allowlist)
    except UnsafeURL as exc:
        raise UnsafeURL(f"{name}: {exc.message}", {"field": name}) from None
