"""Changing and deleting data rows: one row's update (the path upserts take too), deletes,
global key assignment (reads live in ``catalog.queries``, bulk creation in ``imports``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tether.catalog.metadata_schema import Schema, load_schema
from tether.catalog.queries import get, ids_for_global_keys
from tether.catalog.rows import MAX_GLOBAL_KEY, NormalRow, RowError, normalize
from tether.db.dml import insert_ignoring_duplicates
from tether.db.tables import data_row_metadata, data_rows, metadata_values
from tether.errors import Conflict, Invalid


def update_row(
    conn: Connection, org_id: int, row_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply the given fields (others stay) and re-check the whole row by the import rules."""
    current = get(conn, org_id, row_id)
    merged = {
        k: current.get(k)
        for k in (
            "row_data",
            "global_key",
            "external_id",
            "media_type",
            "media_attributes",
            "attachments",
        )
    }
    merged["metadata_fields"] = current["metadata_fields"]
    if "row_data" in changes and "media_type" not in changes:
        merged["media_type"] = None
    merged.update({k: v for k, v in changes.items() if k in merged or k == "metadata_fields"})
    extra = {k: v for k, v in current.items() if k not in merged and k not in _SERVER_FIELDS}
    merged["extra"] = extra or None
    schema = load_schema(conn, org_id)
    if changes.get("metadata_fields_set") or changes.get("metadata_fields_remove"):
        if "metadata_fields" in changes:
            raise _invalid_metadata(
                "metadata_fields replaces the whole list; send it alone, or change single "
                "fields with metadata_fields_set and metadata_fields_remove"
            )
        merged["metadata_fields"] = patch_metadata(
            schema,
            current["metadata_fields"],
            changes.get("metadata_fields_set") or [],
            changes.get("metadata_fields_remove") or [],
        )
    try:
        norm = normalize(merged, schema)
    except RowError as exc:
        raise Invalid(exc.message, details={"code": exc.code}) from None
    try:
        with conn.begin_nested():
            write_update(conn, org_id, current["dataset_id"], row_id, norm, datetime.now(UTC))
    except IntegrityError:
        raise Conflict(
            f"global key {norm.global_key!r} belongs to another data row",
            details={"global_key": norm.global_key},
            code="global_key_exists",
        ) from None
    return get(conn, org_id, row_id)


def patch_metadata(
    schema: Schema, current: list[dict[str, Any]], to_set: list[Any], to_remove: list[Any]
) -> list[dict[str, Any]]:
    """A row's metadata entries with some set (changed in place, or added at the end) and
    some removed (removing a field the row does not have changes nothing). The values are
    checked afterwards with the whole row."""
    removed = set()
    for name in to_remove:
        f = schema.resolve(name, name)
        if f is None:
            raise _invalid_metadata(f"unknown metadata field {name!r} in metadata_fields_remove")
        removed.add(f.id)
    entries = {entry["schema_id"]: entry for entry in current}
    changed: set[str] = set()
    for entry in to_set:
        if not isinstance(entry, dict) or "value" not in entry:
            raise _invalid_metadata(
                f"metadata_fields_set entry {entry!r} needs a name or schema_id and a value"
            )
        schema_id = entry.get("schema_id") or entry.get("schemaId")
        f = schema.resolve(schema_id, entry.get("name") or entry.get("schema_name"))
        if f is None:
            raise _invalid_metadata(f"unknown metadata field {entry.get('name') or schema_id!r}")
        if f.id in removed:
            raise _invalid_metadata(f"metadata field {f.name!r} is both set and removed")
        if f.id in changed:
            raise _invalid_metadata(f"metadata field {f.name!r} is set twice")
        changed.add(f.id)
        entries[f.id] = {"schema_id": f.id, "name": f.name, "value": entry["value"]}
    return [entry for key, entry in entries.items() if key not in removed]


def _invalid_metadata(message: str) -> Invalid:
    return Invalid(message, details={"code": "invalid_metadata"})


_SERVER_FIELDS = ("id", "dataset_id", "created_by", "created_at", "updated_at", "metadata_fields")


def write_update(
    conn: Connection, org_id: int, dataset_id: int, row_id: int, norm: NormalRow, now: datetime
) -> None:
    conn.execute(
        update(data_rows)
        .where(data_rows.c.id == row_id)
        .values(
            global_key=norm.global_key,
            external_id=norm.external_id,
            media_type=norm.media_type,
            row_data=norm.row_data,
            media_attributes=norm.media_attributes,
            metadata=norm.metadata,
            attachments=norm.attachments,
            extra=norm.extra,
            updated_at=now,
        )
    )
    conn.execute(delete(data_row_metadata).where(data_row_metadata.c.data_row_id == row_id))
    record_text_values(conn, org_id, norm.metadata_values)
    if norm.metadata_values:
        conn.execute(
            insert(data_row_metadata),
            [
                {
                    "data_row_id": row_id,
                    "field_key": key,
                    "org_id": org_id,
                    "dataset_id": dataset_id,
                    "value_text": text,
                    "value_num": num,
                }
                for key, text, num in norm.metadata_values
            ],
        )


def record_text_values(
    conn: Connection, org_id: int, values: list[tuple[int, str | None, float | None]]
) -> None:
    """Remember each field's distinct text values (what "contains" filters search)."""
    distinct = {(key, text) for key, text, _num in values if text is not None}
    insert_ignoring_duplicates(
        conn,
        metadata_values,
        [{"org_id": org_id, "field_key": k, "value_text": t} for k, t in sorted(distinct)],
    )


def delete_many(
    conn: Connection,
    org_id: int,
    ids: list[int] | None = None,
    global_keys: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Delete by ids and/or global keys; one result per item given."""
    results: list[dict[str, Any]] = []
    wanted = {int(i): i for i in ids or [] if _is_int(i)}
    found_ids = set(
        conn.execute(
            select(data_rows.c.id).where(
                data_rows.c.org_id == org_id, data_rows.c.id.in_(list(wanted))
            )
        ).scalars()
    )
    for i in ids or []:
        ok = _is_int(i) and int(i) in found_ids
        results.append({"data_row_id": i, "deleted": ok, "error": None if ok else "not found"})
    key_rows = {
        key: row_id
        for key, row_id in conn.execute(
            select(data_rows.c.global_key, data_rows.c.id).where(
                data_rows.c.org_id == org_id, data_rows.c.global_key.in_(global_keys or [])
            )
        )
    }
    for k in global_keys or []:
        ok = k in key_rows
        results.append({"global_key": k, "deleted": ok, "error": None if ok else "not found"})
    doomed = list(found_ids | set(key_rows.values()))
    for start in range(0, len(doomed), 1000):
        chunk = doomed[start : start + 1000]
        conn.execute(delete(data_row_metadata).where(data_row_metadata.c.data_row_id.in_(chunk)))
        conn.execute(delete(data_rows).where(data_rows.c.id.in_(chunk)))
    return results


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def assign_global_keys(
    conn: Connection, org_id: int, pairs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Give rows new global keys; each pair succeeds or fails on its own."""
    results = []
    now = datetime.now(UTC)
    for pair in pairs:
        row_id, key = pair.get("data_row_id"), pair.get("global_key")
        result = {"data_row_id": row_id, "global_key": key, "ok": False, "error": None}
        result["code"] = "invalid"
        results.append(result)
        if not _is_int(row_id) or not isinstance(key, str) or not key or len(key) > MAX_GLOBAL_KEY:
            result["error"] = (
                f"needs an integer data_row_id and a global_key of 1-{MAX_GLOBAL_KEY} characters"
            )
            continue
        try:
            with conn.begin_nested():
                done = conn.execute(
                    update(data_rows)
                    .where(data_rows.c.org_id == org_id, data_rows.c.id == row_id)
                    .values(global_key=key, updated_at=now)
                ).rowcount
        except IntegrityError:
            result["error"] = f"global key {key!r} belongs to another data row"
            result["code"] = "global_key_exists"
            continue
        result["ok"] = bool(done)
        result["error"] = None if done else "data row not found"
        result["code"] = None if done else "not_found"
    return results


def clear_global_keys(conn: Connection, org_id: int, keys: list[str]) -> list[dict[str, Any]]:
    found = {
        r["global_key"]: r["data_row_id"]
        for r in ids_for_global_keys(conn, org_id, keys)
        if r["data_row_id"] is not None
    }
    if found:
        conn.execute(
            update(data_rows)
            .where(data_rows.c.org_id == org_id, data_rows.c.id.in_(list(found.values())))
            .values(global_key=None, updated_at=datetime.now(UTC))
        )
    return [
        {"global_key": k, "ok": k in found, "error": None if k in found else "not found"}
        for k in keys
    ]
