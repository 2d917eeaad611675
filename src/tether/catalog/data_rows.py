"""Reading, filtering, updating and deleting data rows (bulk creation lives in ``imports``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Select, and_, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from tether.catalog import datasets
from tether.catalog.metadata_schema import Field, coerce, load_schema
from tether.catalog.rows import MAX_GLOBAL_KEY, NormalRow, RowError, normalize
from tether.db.dml import insert_ignoring_duplicates
from tether.db.tables import data_row_metadata, data_rows, metadata_values
from tether.db.tables import datasets as datasets_table
from tether.errors import Conflict, Invalid, NotFound
from tether.timeutil import iso

MAX_PAGE = 1000
MAX_LOOKUP = 10_000
COUNT_BUDGET_MS = 400
OPS = ("eq", "gt", "gte", "lt", "lte", "contains")
HIDDEN = ("org_id", "extra", "metadata")


@dataclass
class MetadataFilter:
    field: str  # name or schema id
    op: str
    value: Any


@dataclass
class RowFilter:
    dataset_id: int | None = None
    media_type: str | None = None
    external_id: str | None = None
    global_key: str | None = None
    global_key_prefix: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: list[MetadataFilter] = field(default_factory=list)


def to_public(row: Any, names: dict[str, str] | None = None) -> dict[str, Any]:
    """A stored row as users see it, and as export writes it (import reads it back).
    ``names`` maps metadata schema ids to their current names (fields can be renamed)."""
    out: dict[str, Any] = {
        "id": row.id,
        "dataset_id": row.dataset_id,
        "global_key": row.global_key,
        "external_id": row.external_id,
        "media_type": row.media_type,
        "row_data": orjson.loads(row.row_data),
        "media_attributes": orjson.loads(row.media_attributes) if row.media_attributes else {},
        "metadata_fields": _current_names(orjson.loads(row.metadata), names)
        if row.metadata
        else [],
        "attachments": orjson.loads(row.attachments) if row.attachments else [],
    }
    tail = {
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if row.extra:  # what the source file had besides tether's fields; never shadows them
        own = out.keys() | tail.keys()
        out.update((k, v) for k, v in orjson.loads(row.extra).items() if k not in own)
    out.update(tail)
    return out


def _current_names(fields: list[dict[str, Any]], names: dict[str, str] | None) -> Any:
    if names:
        for entry in fields:
            entry["name"] = names.get(entry["schema_id"], entry["name"])
    return fields


def field_names(conn: Connection, org_id: int) -> dict[str, str]:
    return {f.id: f.name for f in load_schema(conn, org_id).fields}


def get(conn: Connection, org_id: int, row_id: int) -> dict[str, Any]:
    row = conn.execute(
        select(data_rows).where(data_rows.c.org_id == org_id, data_rows.c.id == row_id)
    ).first()
    if row is None:
        raise NotFound(f"no data row {row_id}")
    return to_public(row, field_names(conn, org_id))


def ids_for_global_keys(conn: Connection, org_id: int, keys: list[str]) -> list[dict[str, Any]]:
    """One result per key, in the order given: its data row id, or null when not found."""
    if len(keys) > MAX_LOOKUP:
        raise Invalid(f"at most {MAX_LOOKUP} global keys per call")
    found: dict[str, int] = {}
    wanted = [k for k in dict.fromkeys(keys) if isinstance(k, str)]
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        found.update(
            (key, row_id)
            for key, row_id in conn.execute(
                select(data_rows.c.global_key, data_rows.c.id).where(
                    data_rows.c.org_id == org_id, data_rows.c.global_key.in_(chunk)
                )
            )
        )
    return [{"global_key": k, "data_row_id": found.get(k)} for k in keys]


class _Empty(Exception):
    """A filter that no row can match (a "contains" no stored value has)."""


def _row_conditions(org_id: int, flt: RowFilter) -> list[Any]:
    """Conditions on data_rows' own columns, beyond its organization and dataset."""
    conds: list[Any] = []
    if flt.media_type:
        conds.append(data_rows.c.media_type == flt.media_type.upper())
    if flt.external_id is not None:
        conds.append(data_rows.c.external_id == flt.external_id)
    if flt.global_key is not None:
        conds.append(data_rows.c.global_key == flt.global_key)
    if flt.global_key_prefix:
        prefix = flt.global_key_prefix
        conds += [data_rows.c.global_key >= prefix, data_rows.c.global_key < prefix + "\U0010ffff"]
    if flt.created_after:
        conds.append(data_rows.c.created_at >= flt.created_after)
    if flt.created_before:
        conds.append(data_rows.c.created_at < flt.created_before)
    return conds


def _metadata_joins(conn: Connection, org_id: int, flt: RowFilter) -> list[tuple[Any, Any]]:
    """One (alias, condition) per filtered field, each served by a (scope, field, value, id)
    partial index: text equality reads in id order, a number range is one seek."""
    joins = []
    for i, (f, filters) in enumerate(_by_field(conn, org_id, flt.metadata)):
        m = data_row_metadata.alias(f"m{i}")
        scope = (
            m.c.dataset_id == flt.dataset_id if flt.dataset_id is not None else m.c.org_id == org_id
        )
        conds = [_metadata_condition(conn, org_id, f, mf, m) for mf in filters]
        joins.append((m, and_(scope, m.c.field_key == f.key, *conds)))
    return joins


def _matching_ids(conn: Connection, org_id: int, flt: RowFilter) -> tuple[Select[Any], Any]:
    """The ids of matching rows, and the column they are ordered and keyset by.

    It reads only the index that drives the filter: ``data_rows (dataset_id, id)`` for a
    dataset, the metadata index for metadata filters (joining data_rows only when a row
    column is filtered too). Rows are fetched by id afterwards, so no planner can choose to
    walk the whole table in id order instead.
    """
    joins = _metadata_joins(conn, org_id, flt)
    row_conds = _row_conditions(org_id, flt)
    if flt.dataset_id is not None:
        _require_dataset(conn, org_id, flt.dataset_id)
    if not joins:
        scope = (
            data_rows.c.dataset_id == flt.dataset_id
            if flt.dataset_id is not None
            else data_rows.c.org_id == org_id
        )
        return select(data_rows.c.id).where(scope, *row_conds), data_rows.c.id
    (first, first_cond), rest = joins[0], joins[1:]
    source: Any = first
    for m, cond in rest:
        source = source.join(m, and_(m.c.data_row_id == first.c.data_row_id, cond))
    if row_conds:
        source = source.join(data_rows, and_(data_rows.c.id == first.c.data_row_id, *row_conds))
    ids = select(first.c.data_row_id).select_from(source).where(first_cond)
    return ids, first.c.data_row_id


def _require_dataset(conn: Connection, org_id: int, dataset_id: int) -> None:
    """A dataset filter names one of the caller's datasets, or matches nothing."""
    found = conn.execute(
        select(datasets_table.c.id).where(
            datasets_table.c.id == dataset_id, datasets_table.c.org_id == org_id
        )
    ).first()
    if found is None:
        raise _Empty()


def _by_field(
    conn: Connection, org_id: int, filters: list[MetadataFilter]
) -> list[tuple[Field, list[MetadataFilter]]]:
    """Filters grouped by field (a range's two ends share one join)."""
    if not filters:
        return []
    schema = load_schema(conn, org_id)
    groups: dict[str, tuple[Field, list[MetadataFilter]]] = {}
    for mf in filters:
        f = schema.resolve(mf.field, mf.field)
        if f is None:
            raise Invalid(f"unknown metadata field {mf.field!r}")
        if f.kind == "embedding":
            raise Invalid("embedding fields cannot be filtered on")
        groups.setdefault(f.id, (f, []))[1].append(mf)
    return list(groups.values())


def _metadata_condition(conn: Connection, org_id: int, f: Field, mf: MetadataFilter, m: Any) -> Any:
    if mf.op not in OPS:
        raise Invalid(f"unknown filter {mf.op!r}; expected one of {', '.join(OPS)}")
    if mf.op == "contains":
        if f.kind != "string":
            raise Invalid(f"'contains' works on string fields; {f.name!r} is a {f.kind}")
        values = _values_containing(conn, org_id, f.key, str(mf.value))
        if not values:
            raise _Empty()
        return m.c.value_text.in_(values)
    if mf.op != "eq" and f.kind in ("string", "enum"):
        raise Invalid(f"{mf.op!r} needs a number or datetime field; {f.name!r} is a {f.kind}")
    try:
        _json, value_text, number = coerce(f, mf.value)
    except ValueError as exc:
        raise Invalid(f"filter on {f.name!r}: {exc}") from None
    if f.kind in ("string", "enum"):
        return m.c.value_text == value_text
    column = m.c.value_num
    return {
        "eq": column == number,
        "gt": column > number,
        "gte": column >= number,
        "lt": column < number,
        "lte": column <= number,
    }[mf.op]


def _values_containing(conn: Connection, org_id: int, field_key: int, part: str) -> list[str]:
    return list(
        conn.execute(
            select(metadata_values.c.value_text).where(
                metadata_values.c.org_id == org_id,
                metadata_values.c.field_key == field_key,
                _position(conn, metadata_values.c.value_text, part) > 0,
            )
        ).scalars()
    )


def _position(conn: Connection, column: Any, part: str) -> Any:
    """Where ``part`` starts in ``column`` (0: nowhere), case-sensitive on both databases
    (SQLite's LIKE ignores ASCII case, PostgreSQL's does not)."""
    if conn.dialect.name == "sqlite":
        return func.instr(column, part)
    return func.strpos(column, part)


def _sort_key(conn: Connection, flt: RowFilter, key: Any) -> Any:
    """The ORDER BY of a page. SQLite 3.40 was seen (in one test run out of several) to take
    an ``IN (...)`` over the metadata index as already ordered by id, so pages driven by a
    "contains" filter skipped rows; ``key + 0`` makes it sort the matches itself."""
    drives_with_in = bool(flt.metadata) and flt.metadata[0].op == "contains"
    return key + 0 if drives_with_in and conn.dialect.name == "sqlite" else key


def page_query(
    conn: Connection, org_id: int, flt: RowFilter, after: int | None, limit: int
) -> Select[Any]:
    """The statement behind one page (the query benchmark runs it directly)."""
    ids, key = _matching_ids(conn, org_id, flt)
    if after is not None:
        ids = ids.where(key > after)
    ids = ids.order_by(_sort_key(conn, flt, key)).limit(limit)
    query = select(data_rows).where(data_rows.c.org_id == org_id, data_rows.c.id.in_(ids))
    return query.order_by(data_rows.c.id)


def count_query(conn: Connection, org_id: int, flt: RowFilter) -> tuple[Select[Any], Select[Any]]:
    """The count statement, and the statement whose rows it counts."""
    counted, _key = _matching_ids(conn, org_id, flt)
    return select(func.count()).select_from(counted.subquery()), counted


def page(
    conn: Connection, org_id: int, flt: RowFilter, after: int | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], int | None]:
    """One page in creation order; the second value is the cursor of the next page."""
    limit = max(1, min(limit, MAX_PAGE))
    try:
        query = page_query(conn, org_id, flt, after, limit + 1)
    except _Empty:
        return [], None
    rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    names = field_names(conn, org_id) if any(r.metadata for r in rows) else None
    return [to_public(r, names) for r in rows], (rows[-1].id if more else None)


def count(
    conn: Connection, org_id: int, flt: RowFilter, budget_ms: int = COUNT_BUDGET_MS
) -> tuple[int, bool]:
    """How many rows match, and whether that is exact. PostgreSQL answers with the planner's
    estimate when an exact count would take longer than ``budget_ms``."""
    try:
        counting, counted = count_query(conn, org_id, flt)
    except _Empty:
        return 0, True
    if conn.dialect.name != "postgresql":
        return int(conn.execute(counting).scalar_one()), True
    try:
        with conn.begin_nested():
            conn.execute(text(f"SET LOCAL statement_timeout = {int(budget_ms)}"))
            exact = int(conn.execute(counting).scalar_one())
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        return exact, True
    except OperationalError:
        compiled = counted.compile(dialect=conn.dialect)
        plan = conn.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params
        ).scalar_one()
        return int(plan[0]["Plan"]["Plan Rows"]), False


def iterate(
    engine_conn: Connection, org_id: int, flt: RowFilter, batch: int = 1000
) -> Iterator[dict[str, Any]]:
    """Every matching row, read in keyset pages so memory stays flat."""
    after: int | None = None
    while True:
        rows, after = page(engine_conn, org_id, flt, after, batch)
        yield from rows
        if after is None:
            return


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
    try:
        norm = normalize(merged, load_schema(conn, org_id))
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


def dataset_filter(conn: Connection, org_id: int, dataset: int | str) -> RowFilter:
    return RowFilter(dataset_id=int(datasets.get(conn, org_id, dataset)["id"]))
