"""Writing one chunk of validated rows: new rows in bulk, existing global keys as per-row
errors (or updates with ``upsert``), all in the caller's transaction.

The two bulk INSERTs (data rows, their metadata values) are the import's hot path, so they
skip SQLAlchemy's per-row parameter handling: rows become tuples in column order, written with
the driver's ``executemany`` on SQLite and ``COPY`` on PostgreSQL. Values that are the same
for the whole chunk (timestamps, organization, dataset, creator) go through the column
types' bind processing once, so what lands is exactly what SQLAlchemy would have stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, Text, any_, bindparam, column, func, select
from sqlalchemy.dialects import postgresql

from tether.catalog.data_rows import record_text_values, write_update
from tether.catalog.rows import NormalRow
from tether.db import ids
from tether.db.tables import data_row_metadata, data_rows, datasets
from tether.imports.collector import collector_paused
from tether.jobs.service import ItemError


@dataclass
class ImportTarget:
    org_id: int
    dataset_id: int
    user_id: int | None
    upsert: bool
    seen_keys: set[int] = field(default_factory=set)  # hashes of this import's global keys


@dataclass
class ChunkResult:
    created: int = 0
    updated: int = 0
    errors: list[ItemError] = field(default_factory=list)


def allocate_ids(engine: Engine, count: int) -> int:
    """Reserve ``count`` consecutive data row ids in a transaction of their own; returns the
    first. Unused ids leave gaps, which is fine."""
    with engine.begin() as conn:
        return reserve_ids(conn, count)


def reserve_ids(conn: Connection, count: int) -> int:
    """``allocate_ids`` in the caller's transaction."""
    return ids.reserve(conn, "data_rows", count)


def write_chunk(
    conn: Connection,
    target: ImportTarget,
    rows: list[tuple[int, NormalRow]],
    first_id: int,
    now: datetime,
) -> ChunkResult:
    result = ChunkResult()
    begin_writing(conn)
    _check_dataset(conn, target)
    with collector_paused():
        fresh, existing_ids = _sort_out(conn, target, rows, result)
        if fresh:
            _insert_new(conn, target, fresh, first_id, now, result)
        for (_index, row), row_id in existing_ids:
            write_update(conn, target.org_id, target.dataset_id, row_id, row, now)
            result.updated += 1
        values = [v for _i, r in rows for v in r.metadata_values]
        record_text_values(conn, target.org_id, values)
    return result


def begin_writing(conn: Connection) -> None:
    """On SQLite, open the transaction as a writer at once (``BEGIN IMMEDIATE``).

    The sqlite3 driver starts a transaction only at the first INSERT/UPDATE/DELETE, and the
    chunk reads (its dataset, the global keys taken) before it writes: a transaction that
    reads first and writes later fails at once ("database is locked") when another writer
    got in between. Holding the write lock from the key lookup on also means no one can take
    a global key between the lookup and the INSERT."""
    if conn.dialect.name != "sqlite":
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class DatasetGone(Exception):
    """The import's dataset was deleted while the import was queued or running."""


def _check_dataset(conn: Connection, target: ImportTarget) -> None:
    """The dataset must still be there, and stay there until this chunk commits (on
    PostgreSQL a key-share lock; on SQLite the write lock of ``begin_writing`` does it)."""
    query = select(datasets.c.id).where(
        datasets.c.id == target.dataset_id, datasets.c.deleted_at.is_(None)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True, key_share=True)
    if conn.execute(query).first() is None:
        raise DatasetGone(f"dataset {target.dataset_id} was deleted; nothing more is imported")


def _key_in(conn: Connection, keys: list[str]) -> Any:
    """``global_key IN keys`` with the keys bound as a single parameter."""
    if conn.dialect.name == "postgresql":
        return data_rows.c.global_key == any_(bindparam("keys", keys, type_=postgresql.ARRAY(Text)))
    listed = func.json_each(bindparam("keys", orjson.dumps(keys).decode(), type_=Text))
    return data_rows.c.global_key.in_(select(column("value")).select_from(listed))


def _error(index: int, row: NormalRow, code: str, message: str) -> ItemError:
    return ItemError(index, code, message, row.global_key, row.external_id)


def _sort_out(
    conn: Connection, target: ImportTarget, rows: list[tuple[int, NormalRow]], result: ChunkResult
) -> tuple[list[tuple[int, NormalRow]], list[Any]]:
    """Split rows into new ones and updates; duplicates and taken keys become errors."""
    keys = [r.global_key for _i, r in rows if r.global_key is not None]
    taken: dict[str, tuple[int, int]] = {}
    if keys:
        # The keys go as one parameter (an array, or a JSON list on SQLite): a statement with
        # thousands of parameters costs more to build and send than the lookup itself.
        query = select(data_rows.c.global_key, data_rows.c.id, data_rows.c.dataset_id).where(
            data_rows.c.org_id == target.org_id, _key_in(conn, keys)
        )
        taken.update((k, (i, d)) for k, i, d in conn.execute(query))
    fresh, updates = [], []
    seen = target.seen_keys
    for index, row in rows:
        key = row.global_key
        if key is not None:
            marker = hash(key)
            if marker in seen:
                result.errors.append(
                    _error(
                        index,
                        row,
                        "duplicate_global_key",
                        f"global key {key!r} appears earlier in this import",
                    )
                )
                continue
            seen.add(marker)
            if key in taken:
                row_id, dataset_id = taken[key]
                if not target.upsert:
                    result.errors.append(
                        _error(
                            index,
                            row,
                            "global_key_exists",
                            f"global key {key!r} is already used by data row {row_id}",
                        )
                    )
                elif dataset_id != target.dataset_id:
                    result.errors.append(
                        _error(
                            index,
                            row,
                            "global_key_in_other_dataset",
                            f"global key {key!r} belongs to data row {row_id} in another dataset",
                        )
                    )
                else:
                    updates.append(((index, row), row_id))
                continue
        fresh.append((index, row))
    return fresh, updates


def _index_order(value: tuple[Any, ...]) -> tuple[str, str, float]:
    return value[1], value[4] or "", value[5] or 0.0


def _insert_new(
    conn: Connection,
    target: ImportTarget,
    fresh: list[tuple[int, NormalRow]],
    first_id: int,
    now: datetime,
    result: ChunkResult,
) -> None:
    records, values = _records(conn, target, fresh, first_id, now)
    if conn.dialect.name == "postgresql":
        # In the order of the metadata indexes: PostgreSQL then fills their pages in turn
        # (about a sixth faster than in row order); SQLite does not care.
        values.sort(key=_index_order)
    integrity_error = conn.dialect.dbapi.IntegrityError  # type: ignore[union-attr]
    try:
        with conn.begin_nested():
            bulk_insert(conn, data_rows, records)
            bulk_insert(conn, data_row_metadata, values)
        result.created += len(records)
    except integrity_error:
        # Another writer took one of these global keys since we looked: go row by row.
        by_row: dict[int, list[tuple[Any, ...]]] = {}
        for value in values:
            by_row.setdefault(value[0], []).append(value)
        for (index, row), record in zip(fresh, records, strict=True):
            try:
                with conn.begin_nested():
                    bulk_insert(conn, data_rows, [record])
                    bulk_insert(conn, data_row_metadata, by_row.get(record[0], []))
                result.created += 1
            except integrity_error as exc:
                if row.global_key is None:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
                    result.errors.append(
                        _error(index, row, "not_stored", f"the database refused the row: {reason}")
                    )
                else:
                    result.errors.append(
                        _error(
                            index,
                            row,
                            "global_key_exists",
                            f"global key {row.global_key!r} is already used",
                        )
                    )


# Column order of the tuples ``_records`` makes.
ROW_COLUMNS = (
    "id",
    "org_id",
    "dataset_id",
    "global_key",
    "external_id",
    "media_type",
    "row_data",
    "media_attributes",
    "metadata",
    "attachments",
    "extra",
    "created_by",
    "created_at",
    "updated_at",
)
VALUE_COLUMNS = ("data_row_id", "field_key", "org_id", "dataset_id", "value_text", "value_num")
# Processed once per chunk (``_bound``); every other column's values go to the driver as they
# are, which must be what SQLAlchemy would send too (``_check_plain``).
CHUNK_CONSTANTS = frozenset({"org_id", "dataset_id", "created_by", "created_at", "updated_at"})
# SQLite's Float processing makes numbers floats: ``coerce`` gives floats (or None) already.
FLOATS_ALREADY = frozenset({"value_num"})


def _processor(conn: Connection, table: Table, name: str) -> Callable[[Any], Any] | None:
    dialect = conn.dialect
    return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)


def _bound(conn: Connection, table: Table, name: str, value: Any) -> Any:
    """``value`` as the driver gets it for ``table.name`` (SQLite keeps datetimes as text)."""
    process = _processor(conn, table, name)
    return value if process is None or value is None else process(value)


def _check_plain(conn: Connection, table: Table, columns: Iterable[str]) -> None:
    """The per-row columns must need no bind processing, or tuples would store other values
    than SQLAlchemy does (a guard for schema changes)."""
    for name in columns:
        if name in CHUNK_CONSTANTS or name in FLOATS_ALREADY:
            continue
        if _processor(conn, table, name) is not None:
            raise TypeError(f"{table.name}.{name} needs bind processing; extend _records")


def _records(
    conn: Connection,
    target: ImportTarget,
    fresh: list[tuple[int, NormalRow]],
    first_id: int,
    now: datetime,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    _check_plain(conn, data_rows, ROW_COLUMNS)
    _check_plain(conn, data_row_metadata, VALUE_COLUMNS)
    org_id = _bound(conn, data_rows, "org_id", target.org_id)
    dataset_id = _bound(conn, data_rows, "dataset_id", target.dataset_id)
    user_id = _bound(conn, data_rows, "created_by", target.user_id)
    stamp = _bound(conn, data_rows, "created_at", now)
    records: list[tuple[Any, ...]] = []
    values: list[tuple[Any, ...]] = []
    add_record, add_value = records.append, values.append
    row_id = first_id
    for _index, row in fresh:
        add_record(
            (
                row_id,
                org_id,
                dataset_id,
                row.global_key,
                row.external_id,
                row.media_type,
                row.row_data,
                row.media_attributes,
                row.metadata,
                row.attachments,
                row.extra,
                user_id,
                stamp,
                stamp,
            )
        )
        for field_key, value_text, value_num in row.metadata_values:
            add_value((row_id, field_key, org_id, dataset_id, value_text, value_num))
        row_id += 1
    return records, values


def bulk_insert(conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT tuples (in the column order of ``_records``) with the driver itself: COPY on
    PostgreSQL, ``executemany`` elsewhere."""
    if not rows:
        return
    columns = ROW_COLUMNS if table is data_rows else VALUE_COLUMNS
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            with cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as copy:
                write_row: Callable[[Any], None] = copy.write_row
                for row in rows:
                    write_row(row)
        else:
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            marks = ", ".join([mark] * len(columns))
            cursor.executemany(f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})", rows)
    finally:
        cursor.close()
