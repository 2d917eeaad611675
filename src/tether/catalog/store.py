"""The one bulk write path for data rows: imports and storage sync both call ``write_rows``.

``write_rows`` writes validated rows (``catalog.rows.normalize``) into one dataset in the
caller's transaction: new global keys become new rows, taken ones per-item errors or, with
``upsert``, updates of their rows; it returns the counts and the per-item errors.

Writers running side by side (two imports of overlapping files, an import beside a sync) end
as if they had run one after the other: a key that another writer commits first makes this
row an update of that writer's row (upsert) or a ``global_key_exists`` error, never a failed
chunk. The chunk takes a bounded number of locks: one savepoint, not one per row (each
PostgreSQL subtransaction holds a lock until the transaction ends, and thousands of them
exhaust ``max_locks_per_transaction``). Rows are inserted in key order and updated in id
order, so two chunks that wait on each other's keys always wait in the same direction and
cannot deadlock.

The two bulk INSERTs (data rows, their metadata values) are the hot path, so they skip
SQLAlchemy's per-row parameter handling: rows become tuples in column order, written with
the driver's ``executemany`` on SQLite and ``COPY`` on PostgreSQL. Values that are the same
for the whole chunk (timestamps, organization, dataset, creator) go through the column
types' bind processing once, so what lands is exactly what SQLAlchemy would have stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from operator import attrgetter, itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Table,
    Text,
    any_,
    bindparam,
    column,
    func,
    select,
)
from sqlalchemy.dialects import postgresql

from tether.catalog.rows import NormalRow
from tether.db import ids
from tether.db.dml import insert_ignoring_duplicates
from tether.db.tables import data_row_metadata, data_rows, datasets, metadata_values
from tether.imports.collector import collector_paused
from tether.jobs.service import ItemError

Rows = list[tuple[int, NormalRow]]  # (the item's index in its source, the checked row)


@dataclass
class Target:
    """Where rows go. ``upsert``: a global key that a row of this dataset holds updates that
    row (else it is an error). ``seen_keys`` remembers (hashes of) the keys written so far by
    one import, so a key given twice in it is an error for the second item."""

    org_id: int
    dataset_id: int
    user_id: int | None
    upsert: bool = False
    seen_keys: set[int] = field(default_factory=set)
    # Look the keys up before inserting? Not after a chunk none of whose keys was taken:
    # the insert then finds out itself (and a conflict sends the chunk the long way round).
    look_up_first: bool = True


@dataclass
class WriteResult:
    created: int = 0
    updated: int = 0
    errors: list[ItemError] = field(default_factory=list)


class DatasetGone(Exception):
    """The target dataset was deleted while the rows were on their way."""


def allocate_ids(engine: Engine, count: int) -> int:
    """Reserve ``count`` consecutive data row ids in a transaction of their own; returns the
    first. Writers on PostgreSQL do this so they do not queue on ``id_blocks`` behind each
    other's chunks. Unused ids leave gaps, which is fine."""
    with engine.begin() as conn:
        return reserve_ids(conn, count)


def reserve_ids(conn: Connection, count: int) -> int:
    """``allocate_ids`` in the caller's transaction."""
    return ids.reserve(conn, "data_rows", count)


def write_rows(
    conn: Connection,
    target: Target,
    rows: Rows,
    first_id: int | None = None,
    now: datetime | None = None,
) -> WriteResult:
    """Write ``rows`` into ``target`` in the caller's transaction (it commits them).

    New rows take the ids ``first_id``, ``first_id + 1``, ... (reserved with
    ``allocate_ids``/``reserve_ids`` for ``len(rows)``), or ids reserved here when it is
    None. Raises ``DatasetGone`` when the dataset no longer exists."""
    result = WriteResult()
    now = now or datetime.now(UTC)
    begin_writing(conn)
    _check_dataset(conn, target)
    with collector_paused():
        rows = _drop_repeats(target, rows, result)
        if target.look_up_first:
            fresh, updates = _sort_out(conn, target, rows, result)
        else:
            fresh, updates = rows, []
        taken = len(rows) - len(fresh)
        if fresh:
            start = reserve_ids(conn, len(fresh)) if first_id is None else first_id
            lost = _insert_new(conn, target, fresh, start, now, result)
            if lost:  # keys taken before we looked, or another writer committed them since
                late, more = _sort_out(conn, target, lost, result)
                updates += more
                for index, row in late:
                    result.errors.append(_key_error(index, row, "was taken and released again"))
                taken += len(lost)
        target.look_up_first = taken > 0
        if updates:
            _update_existing(conn, target, updates, now, result)
        record_text_values(conn, target.org_id, [v for _i, r in rows for v in r.metadata_values])
    return result


def begin_writing(conn: Connection) -> None:
    """On SQLite, open the transaction as a writer at once (``BEGIN IMMEDIATE``).

    The sqlite3 driver starts a transaction only at the first INSERT/UPDATE/DELETE, and a
    chunk reads (its dataset, the global keys taken) before it writes: a transaction that
    reads first and writes later fails at once ("database is locked") when another writer
    got in between. Holding the write lock from the key lookup on also means no one can take
    a global key between the lookup and the INSERT."""
    if conn.dialect.name != "sqlite":
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def record_text_values(
    conn: Connection, org_id: int, values: Iterable[tuple[int, str | None, float | None]]
) -> None:
    """Remember each field's distinct text values (what "contains" filters search), in sorted
    order, so writers side by side take them in the same order."""
    distinct = {(key, text) for key, text, _num in values if text is not None}
    insert_ignoring_duplicates(
        conn,
        metadata_values,
        [{"org_id": org_id, "field_key": k, "value_text": t} for k, t in sorted(distinct)],
    )


# --- sorting rows out --------------------------------------------------------------------------


def _check_dataset(conn: Connection, target: Target) -> None:
    """The dataset must still be there, and stay there until this chunk commits (on
    PostgreSQL a key-share lock; on SQLite the write lock of ``begin_writing`` does it)."""
    query = select(datasets.c.id).where(
        datasets.c.id == target.dataset_id,
        datasets.c.org_id == target.org_id,
        datasets.c.deleted_at.is_(None),
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True, key_share=True)
    if conn.execute(query).first() is None:
        raise DatasetGone(f"dataset {target.dataset_id} was deleted; nothing more is imported")


def _error(index: int, row: NormalRow, code: str, message: str) -> ItemError:
    return ItemError(index, code, message, row.global_key, row.external_id)


def _key_error(index: int, row: NormalRow, how: str) -> ItemError:
    return _error(index, row, "global_key_exists", f"global key {row.global_key!r} {how}")


def _drop_repeats(target: Target, rows: Rows, result: WriteResult) -> Rows:
    """Rows whose global key this import has not given before (the others are errors)."""
    seen = target.seen_keys
    kept: Rows = []
    for index, row in rows:
        key = row.global_key
        if key is not None:
            marker = hash(key)
            if marker in seen:
                message = f"global key {key!r} appears earlier in this import"
                result.errors.append(_error(index, row, "duplicate_global_key", message))
                continue
            seen.add(marker)
        kept.append((index, row))
    return kept


def key_in(conn: Connection, keys: list[str]) -> Any:
    """``global_key IN keys`` with the keys bound as a single parameter: a statement with
    thousands of parameters costs more to build and send than the lookup itself."""
    if conn.dialect.name == "postgresql":
        return data_rows.c.global_key == any_(bindparam("keys", keys, type_=postgresql.ARRAY(Text)))
    listed = func.json_each(bindparam("keys", orjson.dumps(keys).decode(), type_=Text))
    return data_rows.c.global_key.in_(select(column("value")).select_from(listed))


def _sort_out(
    conn: Connection, target: Target, rows: Rows, result: WriteResult
) -> tuple[Rows, list[tuple[int, NormalRow, int]]]:
    """Split rows into new ones and updates (index, row, row id); taken keys that cannot be
    updated become errors."""
    keys = [r.global_key for _i, r in rows if r.global_key is not None]
    taken: dict[str, tuple[int, int]] = {}
    if keys:
        query = select(data_rows.c.global_key, data_rows.c.id, data_rows.c.dataset_id).where(
            data_rows.c.org_id == target.org_id, key_in(conn, keys)
        )
        taken.update((k, (i, d)) for k, i, d in conn.execute(query))
    fresh: Rows = []
    updates: list[tuple[int, NormalRow, int]] = []
    for index, row in rows:
        found = taken.get(row.global_key) if row.global_key is not None else None
        if found is None:
            fresh.append((index, row))
        elif not target.upsert:
            result.errors.append(_key_error(index, row, f"is already used by data row {found[0]}"))
        elif found[1] != target.dataset_id:
            message = (
                f"global key {row.global_key!r} belongs to data row {found[0]} in another dataset"
            )
            result.errors.append(_error(index, row, "global_key_in_other_dataset", message))
        else:
            updates.append((index, row, found[0]))
    return fresh, updates


# --- new rows ----------------------------------------------------------------------------------


def _index_order(value: tuple[Any, ...]) -> tuple[str, str, float]:
    return value[1], value[4] or "", value[5] or 0.0


def _in_index_order(values: list[tuple[Any, ...]]) -> None:
    """Sort metadata value tuples by ``_index_order``, in place. A field's values are all
    texts, all numbers or neither (embeddings), so each field's are sorted on their one
    value column (comparing strings or floats, not tuples: half the time or less);
    a field whose values are not all of one kind falls back to the tuples."""
    by_field: dict[Any, list[tuple[Any, ...]]] = {}
    for value in values:
        same = by_field.get(value[1])
        if same is None:
            by_field[value[1]] = [value]
        else:
            same.append(value)
    ordered: list[tuple[Any, ...]] = []
    for key in sorted(by_field):
        same = by_field[key]
        column = 4 if same[0][4] is not None else 5
        try:
            ordered += sorted(same, key=itemgetter(column))
        except TypeError:  # a None among them (only None for an embedding)
            ordered += sorted(same, key=_index_order)
    values[:] = ordered


def _key_order(record: tuple[Any, ...]) -> str:
    return record[3] or ""


def _insert_new(
    conn: Connection, target: Target, fresh: Rows, first_id: int, now: datetime, result: WriteResult
) -> Rows:
    """Insert new rows; returns the rows whose key turned out to be taken.

    The fast path is one bulk insert. If a key is taken (the keys were not looked up first,
    or another writer committed one since the lookup; on PostgreSQL the insert waits for
    that writer to commit), the chunk is inserted again with ``ON CONFLICT (org_id,
    global_key) DO NOTHING`` and the rows that did not land are handed back."""
    integrity_error = conn.dialect.dbapi.IntegrityError  # type: ignore[union-attr]
    if conn.dialect.name == "sqlite":
        try:
            with conn.begin_nested():
                _sqlite_insert(conn, target, fresh, first_id, now)
        except integrity_error:
            pass
        else:
            result.created += len(fresh)
            return []
    records, values = _records(conn, target, fresh, first_id, now)
    if conn.dialect.name != "sqlite":  # (SQLite tried its own bulk insert above)
        # In key order (see the module's docstring), and the values in the order of the
        # metadata indexes: PostgreSQL then fills their pages in turn (about a sixth faster
        # than in row order). The values are ordered while the server still works through
        # the rows sent before the rows' COPY ends. SQLite has one writer at a time and
        # does not care.
        records.sort(key=_key_order)
        try:
            with conn.begin_nested():
                bulk_insert(conn, data_rows, records, partial(_in_index_order, values))
                bulk_insert(conn, data_row_metadata, values)
        except integrity_error:
            pass
        else:
            result.created += len(records)
            return []
    insert_skipping_taken_keys(conn, records)
    landed = _existing(conn, data_rows.c.id, [r[0] for r in records])
    bulk_insert(conn, data_row_metadata, [v for v in values if v[0] in landed])
    result.created += len(landed)
    # Row ``first_id + i`` was made from ``fresh[i]``.
    return [item for i, item in enumerate(fresh) if first_id + i not in landed]


def _id_in(conn: Connection, id_column: Any, wanted: list[int]) -> Any:
    """``id_column IN wanted`` with the ids bound as a single parameter."""
    if conn.dialect.name == "postgresql":
        array = postgresql.ARRAY(id_column.type)
        return id_column == any_(bindparam("ids", wanted, type_=array))
    listed = func.json_each(bindparam("ids", orjson.dumps(wanted).decode(), type_=Text))
    return id_column.in_(select(column("value")).select_from(listed))


def _existing(conn: Connection, id_column: Any, wanted: list[int]) -> set[int]:
    return set(conn.execute(select(id_column).where(_id_in(conn, id_column, wanted))).scalars())


# --- updates -----------------------------------------------------------------------------------

# What a row holds of its own (not its id, dataset or times).
ROW_CONTENT = (
    "global_key",
    "external_id",
    "media_type",
    "row_data",
    "media_attributes",
    "metadata",
    "attachments",
    "extra",
)
UPDATED_COLUMNS = (*ROW_CONTENT, "updated_at")
_content = attrgetter(*ROW_CONTENT)  # a NormalRow's values of ROW_CONTENT, in that order


def update_rows(
    conn: Connection,
    target: Target,
    updates: list[tuple[int, NormalRow, int]],
    now: datetime | None = None,
) -> WriteResult:
    """Replace the stored values of the rows named by id, ``(index, row, row id)`` each, in
    the caller's transaction: what a sync does to the rows of an object that changed (their
    ids come from its links, not from a global key). The rows must be the target
    dataset's."""
    result = WriteResult()
    if updates:
        begin_writing(conn)
        with collector_paused():
            _update_existing(conn, target, list(updates), now or datetime.now(UTC), result)
            record_text_values(
                conn, target.org_id, [v for _i, r, _id in updates for v in r.metadata_values]
            )
    return result


def _update_existing(
    conn: Connection,
    target: Target,
    updates: list[tuple[int, NormalRow, int]],
    now: datetime,
    result: WriteResult,
) -> None:
    """Replace the stored values of existing rows (an upsert replaces whole values), in id
    order; their metadata values are deleted and written again in bulk."""
    updates.sort(key=lambda u: u[2])
    stamp = _bound(conn, data_rows, "updated_at", now)
    org_id = _bound(conn, data_rows, "org_id", target.org_id)
    dataset_id = _bound(conn, data_rows, "dataset_id", target.dataset_id)
    changes = [
        (
            *_content(row),
            stamp,
            row_id,
        )
        for _index, row, row_id in updates
    ]
    row_ids = [row_id for _index, _row, row_id in updates]
    values = [
        (row_id, key, org_id, dataset_id, text, num)
        for _index, row, row_id in updates
        for key, text, num in row.metadata_values
    ]
    _check_plain(conn, data_rows, UPDATED_COLUMNS)
    quote = conn.dialect.identifier_preparer.quote
    mark = _mark(conn)
    sets = ", ".join(f"{quote(c)} = {mark}" for c in UPDATED_COLUMNS)
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(f"UPDATE data_rows SET {sets} WHERE id = {mark}", changes)
    finally:
        cursor.close()
    _delete_values(conn, row_ids)
    bulk_insert(conn, data_row_metadata, values)
    result.updated += len(updates)


def _delete_values(conn: Connection, row_ids: list[int]) -> None:
    column_ = data_row_metadata.c.data_row_id
    conn.execute(data_row_metadata.delete().where(_id_in(conn, column_, row_ids)))


# --- tuples for the driver ---------------------------------------------------------------------

# Column order of the tuples ``_records`` makes.
ROW_COLUMNS = tuple(c.name for c in data_rows.columns)  # every column, in table order
VALUE_COLUMNS = tuple(c.name for c in data_row_metadata.columns)
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
    conn: Connection, target: Target, fresh: Rows, first_id: int, now: datetime
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


# What a new row always binds on SQLite: the others are the same for the whole chunk, or NULL
# in every row of it, and are written into the statement instead (``_sqlite_insert``).
_SQLITE_VARYING = ("id", *ROW_CONTENT)
_SQLITE_NULLABLE = tuple(
    (i, name) for i, name in enumerate(_SQLITE_VARYING) if data_rows.c[name].nullable
)


def _sqlite_insert(
    conn: Connection, target: Target, fresh: Rows, first_id: int, now: datetime
) -> None:
    """Insert new rows and their metadata values on SQLite, binding only what differs from
    row to row: the driver binds every value of every row, and a NULL costs it more than a
    number or a text (it asks the adapters first), so the chunk's constants and the columns
    NULL in all its rows are written into the statement, and the metadata values go in three
    statements: text values, numbers, neither (embeddings). About a quarter less work than
    binding every column of every row. Stores exactly what ``_records`` + ``bulk_insert``
    store (the test of the write path compares them)."""
    _check_plain(conn, data_rows, ROW_COLUMNS)
    _check_plain(conn, data_row_metadata, VALUE_COLUMNS)
    constants = {
        "org_id": _bound(conn, data_rows, "org_id", target.org_id),
        "dataset_id": _bound(conn, data_rows, "dataset_id", target.dataset_id),
        "created_by": _bound(conn, data_rows, "created_by", target.user_id),
        "created_at": _bound(conn, data_rows, "created_at", now),
        "updated_at": _bound(conn, data_rows, "updated_at", now),
    }
    rows: list[tuple[Any, ...]] = [
        (row_id, *_content(row)) for row_id, (_index, row) in enumerate(fresh, first_id)
    ]
    null = [name for i, name in _SQLITE_NULLABLE if _all_none(rows, i)]
    if null:
        kept = [i for i, name in enumerate(_SQLITE_VARYING) if name not in null]
        rows = list(map(itemgetter(*kept), rows))  # (id, media_type and row_data are kept)
    literal = {**constants, **dict.fromkeys(null)}
    _executemany(conn, data_rows, ROW_COLUMNS, literal, rows)
    org_id, dataset_id = constants["org_id"], constants["dataset_id"]
    texts: list[tuple[Any, ...]] = []
    numbers: list[tuple[Any, ...]] = []
    neither: list[tuple[Any, ...]] = []
    for row_id, (_index, row) in enumerate(fresh, first_id):
        for key, value_text, value_num in row.metadata_values:
            if value_text is not None:
                texts.append((row_id, key, value_text))
            elif value_num is not None:
                numbers.append((row_id, key, value_num))
            else:
                neither.append((row_id, key))
    values = {"org_id": org_id, "dataset_id": dataset_id}
    for tuples, null_columns in (
        (texts, {"value_num": None}),
        (numbers, {"value_text": None}),
        (neither, {"value_text": None, "value_num": None}),
    ):
        if tuples:
            _executemany(conn, data_row_metadata, VALUE_COLUMNS, {**values, **null_columns}, tuples)


def _all_none(rows: list[tuple[Any, ...]], column: int) -> bool:
    values = list(map(itemgetter(column), rows))
    return values.count(None) == len(values)


def _executemany(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    literal: dict[str, Any],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """INSERT ``rows`` (the values of ``columns`` not in ``literal``, in order) with the
    values of ``literal`` (ints, text and None, which the statement holds) in every row."""
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join(_literal(literal[c]) if c in literal else "?" for c in columns)
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})", rows)
    finally:
        cursor.close()


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    if type(value) is str:
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _insert_sql(conn: Connection, table: Table, tail: str = "") -> str:
    columns = ROW_COLUMNS if table is data_rows else VALUE_COLUMNS
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join([_mark(conn)] * len(columns))
    return f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks}){tail}"


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Sequence[tuple[Any, ...]],
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """INSERT tuples (in the column order of ``_records``) with the driver itself: a binary
    COPY on PostgreSQL (about half the client's CPU of a text COPY, and no text for the
    server to parse), ``executemany`` elsewhere. ``meanwhile`` runs once the rows are sent
    (on PostgreSQL before the COPY ends, while the server is still at them)."""
    if not rows:
        if meanwhile is not None:
            meanwhile()
        return
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            columns = ROW_COLUMNS if table is data_rows else VALUE_COLUMNS
            quote = conn.dialect.identifier_preparer.quote
            names = ", ".join(quote(c) for c in columns)
            sql = f"COPY {quote(table.name)} ({names}) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(sql) as copy:
                copy.set_types([_copy_type(table.c[c].type) for c in columns])
                write_row: Callable[[Any], None] = copy.write_row
                for row in rows:
                    write_row(row)
                if meanwhile is not None:
                    meanwhile()
        else:
            cursor.executemany(_insert_sql(conn, table), rows)
            if meanwhile is not None:
                meanwhile()
    finally:
        cursor.close()


def _copy_type(kind: Any) -> str:
    """The PostgreSQL type whose binary form a binary COPY sends for a column (a varchar
    column takes text's)."""
    for python_type, name in ((int, "int8"), (float, "float8"), (str, "text")):
        if kind.python_type is python_type:
            return name if name != "int8" or isinstance(kind, BigInteger) else "int4"
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    raise TypeError(f"no binary COPY type for {kind!r}; extend _copy_type")


def insert_skipping_taken_keys(conn: Connection, records: Sequence[tuple[Any, ...]]) -> None:
    """INSERT data row tuples; a row whose global key is taken (or being taken by a writer
    that then commits) is left out, without an error."""
    tail = " ON CONFLICT (org_id, global_key) DO NOTHING"
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(_insert_sql(conn, data_rows, tail), records)
    finally:
        cursor.close()
