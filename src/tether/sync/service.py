"""Storage connections: create, list, show, change, delete and check them.

Rules:
- Every query is scoped to the caller's organization (another one's storage is NotFound).
- Admins create, change and delete storages (they hold credentials); members list, show,
  check and sync them.
- A source storage belongs to a dataset of the organization; a target storage to a project
  (annotations go out to it: ``projects.targets``). Each role takes its own options and
  refuses the other's.
- Creating a storage, or changing its connection fields, runs the check first and saves
  nothing when it finds an error (422 with the error's code and message). Changing only
  options (title, regex_filter, ...) is checked here, without a remote call.
- Secret fields are write-only: answers list their names (``secret_fields_set``), never
  their values. On a change, a secret field left out is kept, one given replaces the stored
  one, one given as null or "" is removed.
- The type of a storage never changes (make a new one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection, select

from tether.accounts.roles import require_admin
from tether.catalog import datasets
from tether.config import Settings
from tether.db.tables import export_links, storages
from tether.errors import Invalid
from tether.projects import projects
from tether.sync import fields
from tether.sync.check import CheckResult, check
from tether.sync.connections import (
    SECRET_FIELDS,
    StorageRecord,
    get_record,
    insert_storage,
    org_external_id,
    seal,
    split_fields,
    to_record,
)
from tether.timeutil import iso

KEYS = ("type", "dataset_id", "project_id", "role")


@dataclass(frozen=True)
class NewStorage:
    """A storage checked and ready to save (``prepare``), not saved yet."""

    record: StorageRecord
    result: CheckResult


@dataclass(frozen=True)
class Change:
    """A change checked and ready to save (``prepare_update``)."""

    record: StorageRecord  # as it will be
    result: CheckResult | None  # None: only options changed, no check ran


def create(
    conn: Connection,
    settings: Settings,
    org_id: int,
    values: dict[str, Any],
    *,
    user_id: int | None,
    role: str,
) -> dict[str, Any]:
    """A new storage, checked first: ``values`` holds ``type``, ``dataset_id`` (a source) or
    ``project_id`` (a target), the type's config fields and any options of its role."""
    return save(conn, settings, prepare(conn, settings, org_id, values, user_id=user_id, role=role))


def prepare(
    conn: Connection,
    settings: Settings,
    org_id: int,
    values: dict[str, Any],
    *,
    user_id: int | None,
    role: str,
) -> NewStorage:
    """Everything of ``create`` but the write: parse, authorize, check (only reads; the
    check calls the store, so callers run it outside a write transaction). A storage given
    ``project_id`` (or ``role: target``) is a target of that project; else a source of
    ``dataset_id``."""
    require_admin(role, "add storages")
    type_ = str(values.get("type") or "")
    model = fields.known_type(type_)
    storage_role = _role_of(values)
    given = {k: v for k, v in values.items() if k not in KEYS}
    config_in, options_in = _split(type_, storage_role, given)
    config = fields.parse(model, config_in)
    options = fields.parse(fields.ROLE_MODELS[storage_role], options_in)
    if storage_role == "target":
        owner = {"project_id": projects.get_id(conn, org_id, int(values["project_id"]))}
    else:
        owner = {"dataset_id": datasets.get(conn, org_id, int(values["dataset_id"]))["id"]}
    if config.get("role_arn"):
        config["external_id"] = org_external_id(conn, org_id)
    draft = _draft(settings, org_id, type_, config, options, user_id, **owner)
    result = check(settings, draft)
    result.raise_for_errors()
    return NewStorage(draft, result)


def _role_of(values: dict[str, Any]) -> str:
    """``source`` or ``target``, from ``role`` or else from which owner is given."""
    role = values.get("role")
    has_dataset, has_project = (
        values.get("dataset_id") is not None,
        values.get("project_id") is not None,
    )
    if has_dataset and has_project:
        raise Invalid(
            "give dataset_id (a source storage) or project_id (a target storage), not both",
            {"field": "project_id"},
        )
    if role is None:
        role = "target" if has_project else "source"
    if role not in ("source", "target"):
        raise Invalid(f"role must be source or target, not {role!r}", {"field": "role"})
    if role == "source" and not has_dataset:
        raise Invalid("a source storage needs dataset_id", {"field": "dataset_id"})
    if role == "target" and not has_project:
        raise Invalid("a target storage needs project_id", {"field": "project_id"})
    return str(role)


def save(conn: Connection, settings: Settings, new: NewStorage) -> dict[str, Any]:
    draft = new.record
    new_id = insert_storage(
        conn,
        settings,
        org_id=draft.org_id,
        type_=draft.type,
        fields={**draft.config, **draft.secrets},
        dataset_id=draft.dataset_id,
        project_id=draft.project_id,
        role=draft.role,
        created_by=draft.created_by,
        **_options_of(draft),
    )
    _schedule(conn, new_id, draft.sync_every_minutes)
    return public(get_record(conn, settings, draft.org_id, new_id), new.result)


def list_storages(
    conn: Connection,
    settings: Settings,
    org_id: int,
    dataset_id: int | None = None,
    project_id: int | None = None,
) -> list[dict[str, Any]]:
    """The organization's storages; of one dataset (its sources) or one project (its
    targets) when given."""
    query = select(storages).where(storages.c.org_id == org_id).order_by(storages.c.id)
    if dataset_id is not None:
        datasets.get(conn, org_id, dataset_id)  # NotFound for another organization's
        query = query.where(storages.c.dataset_id == dataset_id)
    if project_id is not None:
        projects.get_id(conn, org_id, project_id)  # NotFound for another organization's
        query = query.where(storages.c.project_id == project_id)
    return [public(to_record(settings, row)) for row in conn.execute(query)]


def get(conn: Connection, settings: Settings, org_id: int, storage_id: int) -> dict[str, Any]:
    return public(get_record(conn, settings, org_id, storage_id))


def update(
    conn: Connection,
    settings: Settings,
    org_id: int,
    storage_id: int,
    changes: dict[str, Any],
    *,
    role: str,
) -> dict[str, Any]:
    change = prepare_update(conn, settings, org_id, storage_id, changes, role=role)
    return apply(conn, settings, change)


def prepare_update(
    conn: Connection,
    settings: Settings,
    org_id: int,
    storage_id: int,
    changes: dict[str, Any],
    *,
    role: str,
) -> Change:
    """Everything of ``update`` but the write (the check, when it runs, calls the store)."""
    require_admin(role, "change storages")
    record = get_record(conn, settings, org_id, storage_id)
    changes = dict(changes)
    type_ = changes.pop("type", None)
    if type_ is not None and type_ != record.type:
        raise Invalid(
            f"the type of a storage cannot change ({record.type} to {type_}); add a new "
            "storage instead",
            {"field": "type"},
            code="type_change",
        )
    config_in, options_in = _split(record.type, record.role, changes)
    current = {**record.config, **record.secrets}
    for name in fields.DERIVED:
        current.pop(name, None)
    merged = {**current, **config_in}
    for name in SECRET_FIELDS.get(record.type, ()):
        if name in config_in and config_in[name] in (None, ""):
            merged.pop(name, None)  # given as null or "": removed
    config = fields.parse(fields.known_type(record.type), merged)
    model = fields.ROLE_MODELS[record.role]
    options = fields.parse(model, {**_role_options(record), **options_in})
    if config.get("role_arn"):
        config["external_id"] = org_external_id(conn, org_id)
    plain, secret = split_fields(record.type, _stored(config))
    fresh = replace(record, config=plain, secrets=secret, **options)
    result: CheckResult | None = None
    # A target given can_delete_objects is checked again: it must now delete, too.
    deletes_now = fresh.can_delete_objects and not record.can_delete_objects
    if plain != record.config or secret != record.secrets or deletes_now:
        result = check(settings, fresh)
        result.raise_for_errors()
    return Change(fresh, result)


def apply(conn: Connection, settings: Settings, change: Change) -> dict[str, Any]:
    fresh = change.record
    before = get_record(conn, settings, fresh.org_id, fresh.id)
    conn.execute(
        sa.update(storages)
        .where(storages.c.id == fresh.id, storages.c.org_id == fresh.org_id)
        .values(
            config=orjson.dumps(fresh.config).decode(),
            secrets=seal(settings, fresh.secrets),
            updated_at=datetime.now(UTC),
            **_options_of(fresh),
        )
    )
    if fresh.sync_every_minutes != before.sync_every_minutes:
        _schedule(conn, fresh.id, fresh.sync_every_minutes)
    if fresh.role == "target" and fresh.config != before.config:
        # Another bucket, prefix or folder holds none of the objects: export them all anew.
        conn.execute(sa.delete(export_links).where(export_links.c.storage_id == fresh.id))
        conn.execute(sa.update(storages).where(storages.c.id == fresh.id).values(export_seq=0))
    return public(get_record(conn, settings, fresh.org_id, fresh.id), change.result)


def remove(
    conn: Connection, settings: Settings, org_id: int, storage_id: int, *, role: str
) -> None:
    """Delete the storage and what links its objects to rows; the data rows stay (they name
    objects by URI) and the objects in the store are not touched."""
    require_admin(role, "delete storages")
    record = get_record(conn, settings, org_id, storage_id)
    conn.execute(sa.delete(storages).where(storages.c.id == record.id, storages.c.org_id == org_id))


def validate(conn: Connection, settings: Settings, org_id: int, storage_id: int) -> dict[str, Any]:
    """Run the check on demand (any member): ``{ok, errors, warnings, sample_key}``."""
    return check(settings, get_record(conn, settings, org_id, storage_id)).to_dict()


def public(record: StorageRecord, result: CheckResult | None = None) -> dict[str, Any]:
    """What answers show of a storage: never a secret, only the names of those set."""
    return {
        "id": record.id,
        "type": record.type,
        "role": record.role,
        "dataset_id": record.dataset_id,
        "project_id": record.project_id,
        "config": {k: v for k, v in record.config.items() if k not in _secret_names(record)},
        "secret_fields_set": sorted(k for k, v in record.secrets.items() if v not in (None, "")),
        **_options_of(record),
        "next_sync_at": iso(record.next_sync_at),
        "last_sync_job_id": record.last_sync_job_id,
        "created_by": record.created_by,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "check": result.to_dict() if result is not None else None,
    }


def _secret_names(record: StorageRecord) -> set[str]:
    return set(SECRET_FIELDS.get(record.type, ())) | set(record.secrets)


def _options_of(record: StorageRecord) -> dict[str, Any]:
    """Every option column of the record (a role's own and the other role's defaults)."""
    return {name: getattr(record, name) for name in fields.ALL_OPTION_NAMES}


def _role_options(record: StorageRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in fields.ROLE_OPTIONS[record.role]}


def _split(type_: str, role: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, options) of ``values``; ``Invalid`` for a field neither of them has, and
    for an option of the other role (a target lists nothing; a source exports nothing)."""
    names = set(fields.config_names(type_))
    own = fields.ROLE_OPTIONS[role]
    foreign = sorted(
        k for k in values if k not in names and k not in own and k in (fields.ALL_OPTION_NAMES)
    )
    if foreign:
        other = "source" if role == "target" else "target"
        raise Invalid(
            f"{', '.join(foreign)}: {'option' if len(foreign) == 1 else 'options'} of {other} "
            f"storages only; a {role} storage takes the options {', '.join(own)}",
            {"fields": foreign},
            code="option_of_other_role",
        )
    unknown = sorted(k for k in values if k not in names and k not in own)
    if unknown:
        raise Invalid(
            f"{', '.join(unknown)}: not a field of {type_} storages (they take "
            f"{', '.join(sorted(names))} and the options {', '.join(own)})",
            {"fields": unknown},
        )
    config = {k: v for k, v in values.items() if k in names}
    options = {k: v for k, v in values.items() if k in own}
    return config, options


def _stored(config: dict[str, Any]) -> dict[str, Any]:
    """Config as stored: unset optional fields left out."""
    return {k: v for k, v in config.items() if v is not None}


def _draft(
    settings: Settings,
    org_id: int,
    type_: str,
    config: dict[str, Any],
    options: dict[str, Any],
    user_id: int | None,
    *,
    dataset_id: int | None = None,
    project_id: int | None = None,
) -> StorageRecord:
    """The record a storage will be, before it is saved (what the check opens): a source of
    ``dataset_id`` or a target of ``project_id``, the other role's options at their
    defaults."""
    plain, secret = split_fields(type_, _stored(config))
    now = datetime.now(UTC)
    defaults = {**fields.Options().model_dump(), **fields.TargetOptions().model_dump()}
    return StorageRecord(
        id=0,
        org_id=org_id,
        dataset_id=dataset_id,
        project_id=project_id,
        role="target" if project_id is not None else "source",
        type=type_,
        config=plain,
        secrets=secret,
        next_sync_at=None,
        last_sync_job_id=None,
        created_by=user_id,
        created_at=now,
        updated_at=now,
        **{**defaults, **options},
    )


def _schedule(conn: Connection, storage_id: int, every_minutes: int | None) -> None:
    """The next scheduled sync: one period from now, or none for a manual storage."""
    due = datetime.now(UTC) + timedelta(minutes=every_minutes) if every_minutes else None
    conn.execute(sa.update(storages).where(storages.c.id == storage_id).values(next_sync_at=due))
