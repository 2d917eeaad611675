"""Exporting a dataset: every row, every field, one JSON object a line (NDJSON), in id order,
in the shape ``queries.to_public`` gives (so the file imports again as it is).

An export is a consistent snapshot: the dataset is looked up, its rows counted and read in
one read transaction (PostgreSQL: REPEATABLE READ, READ ONLY; SQLite: one read transaction,
which WAL keeps as a snapshot while writers go on). Rows written or deleted meanwhile (even
the whole dataset) do not change what the export holds. ``Export.rows`` is the number of
lines the stream will hold, known before the first one is sent (the API sends it as the
``X-Tether-Export-Rows`` header); a stream that fails part way raises, which the API turns
into an aborted response (no terminating chunk), never a short file that looks complete.

It is the API's heaviest read, so it avoids per-row Python where it can. Each line is spliced
from the JSON text the row already stores; only metadata entries whose field was renamed
since, and extra keys that would shadow tether's own, are parsed and written again. On SQLite
the database itself writes a batch's lines as one byte string (``printf`` a row, then
``group_concat``; see ``_sqlite_batches``), so Python touches a batch, not each row: a batch
holding a row that needs Python (a renamed field's entry, a shadowing extra key, a timestamp
not in the form SQLAlchemy writes) is written row by row in Python instead, as on
PostgreSQL, where rows come from a server-side cursor in big batches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, DateTime, Engine, func, select

from tether.catalog import datasets
from tether.catalog.metadata_schema import load_schema
from tether.db.tables import data_rows
from tether.timeutil import iso

BATCH_ROWS = 5000
BATCH_BYTES = 32 * 1024 * 1024  # a batch of longer lines than this has fewer rows next time
# Custom fields beyond this many make SQLite's test for renamed entries too long: the export
# is then written row by row.
MAX_FIELDS_IN_SQL = 32
# Every column of a row but its organization's (an export stays in one), in table order.
COLUMNS = tuple(c.name for c in data_rows.columns if c.name != "org_id")
# The keys of an exported line that ``extra`` (the source file's other keys) never shadows.
OWN_KEYS = frozenset(
    {
        "id",
        "dataset_id",
        "global_key",
        "external_id",
        "media_type",
        "row_data",
        "media_attributes",
        "metadata_fields",
        "attachments",
        "created_by",
        "created_at",
        "updated_at",
    }
)
_ENTRY = re.compile(r'\{"schema_id":"([^"\\]*)","name":("(?:[^"\\]|\\.)*")')


@dataclass
class Export:
    """An open export: ``rows`` lines will come from ``chunks`` (bytes, whole lines each).
    The snapshot stays open until ``chunks`` is exhausted or ``close()`` is called (which a
    reader that stops early must do: a dropped generator is closed only when it is collected,
    maybe much later)."""

    dataset_id: int
    rows: int
    chunks: Generator[bytes, None, None]

    def close(self) -> None:
        self.chunks.close()


def open_export(engine: Engine, org_id: int, dataset: int | str) -> Export:
    """Open a snapshot of ``dataset`` (its id or name; ``NotFound`` if it is not the
    organization's) and count its rows in it."""
    conn = engine.connect()
    try:
        conn = begin_snapshot(conn)
        dataset_id = int(datasets.get(conn, org_id, dataset)["id"])
        count = conn.execute(
            select(func.count()).where(data_rows.c.dataset_id == dataset_id)
        ).scalar_one()
        renamed = _renames(conn, org_id)
    except BaseException:
        conn.close()
        raise
    return Export(dataset_id, int(count), _chunks(conn, dataset_id, renamed))


def begin_snapshot(conn: Connection) -> Connection:
    """Start a read snapshot on ``conn`` (the connection to use from then on); ``end_snapshot``
    ends it. Project exports read in one too."""
    if conn.dialect.name == "postgresql":
        # The pool sets the connection back to its default level when it is returned.
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        conn.begin()
        return conn
    # The sqlite3 driver would run every SELECT in a transaction of its own.
    dbapi: Any = conn.connection.dbapi_connection
    if not dbapi.in_transaction:
        dbapi.execute("BEGIN")
    return conn


def _renames(conn: Connection, org_id: int) -> dict[str, str]:
    """Custom field id -> its current name as JSON text (reserved fields are never renamed;
    rows keep the name a field had when they were written)."""
    return {
        f.id: orjson.dumps(f.name).decode()
        for f in load_schema(conn, org_id).fields
        if not f.reserved
    }


def _chunks(
    conn: Connection, dataset_id: int, renamed: dict[str, str]
) -> Generator[bytes, None, None]:
    """The lines, ``BATCH_ROWS`` rows a chunk; ends the snapshot and returns the connection
    when done, failed or closed."""
    try:
        yield from _batches(conn, dataset_id, renamed)
    finally:
        end_snapshot(conn)


def end_snapshot(conn: Connection) -> None:
    """End the snapshot ``begin_snapshot`` started and return the connection."""
    try:
        conn.rollback() if conn.dialect.name == "postgresql" else _end_sqlite(conn)
    finally:
        conn.close()


# --- SQLite writes the lines ---------------------------------------------------------------

# A timestamp as SQLAlchemy stores it on SQLite ("2024-05-01 12:30:00.123456", UTC) is
# written in the form ``iso`` gives it ("2024-05-01T12:30:00.123456+00:00"); a row with a
# timestamp of any other form (or of a whole second, which isoformat writes without its
# fraction) is Python's.
_STAMP_OK = "length({c}) = 26 AND instr({c}, '.000000') = 0"
_STAMP = "'\"' || replace({c}, ' ', 'T') || '+00:00\"'"
# The keys that ``_extra`` would drop from a row's extra keys, as a list for SQL.
_OWN_KEYS_SQL = ", ".join(f"'{k}'" for k in sorted(OWN_KEYS))
# One row's line, or NULL when the row needs Python (see ``_line_maker``): its extra keys
# spliced in as they are stored when none of them is one of tether's own, the rest as in
# ``_line_maker``.
_SQLITE_LINE = (
    f"CASE WHEN {_STAMP_OK.format(c='created_at')} AND {_STAMP_OK.format(c='updated_at')} "
    "AND ({metadata_ok}) AND (extra IS NULL OR NOT EXISTS "
    f"(SELECT 1 FROM json_each(extra) WHERE key IN ({_OWN_KEYS_SQL}))) "
    'THEN printf(\'{{"id":%d,"dataset_id":%d,"global_key":%s,"external_id":%s,'
    '"media_type":"%s","row_data":%s,"media_attributes":%s,'
    '"metadata_fields":%s,"attachments":%s%s,"created_by":%s,"created_at":%s,'
    "\"updated_at\":%s}}' || char(10), id, dataset_id, coalesce(json_quote(global_key), 'null'), "
    "coalesce(json_quote(external_id), 'null'), media_type, row_data, "
    "coalesce(media_attributes, '{{}}'), coalesce(metadata, '[]'), coalesce(attachments, '[]'), "
    "CASE WHEN length(extra) > 2 THEN ',' || substr(extra, 2, length(extra) - 2) ELSE '' END, "
    f"coalesce(created_by, 'null'), {_STAMP.format(c='created_at')}, "
    f"{_STAMP.format(c='updated_at')}) END"
)
# A batch: its last id, its rows, how many of them need Python, and (when none does) its
# lines. The rows come in id order from the inner query (LIMIT keeps it a subquery that
# SQLite runs first, in order) and group_concat joins them in the order it is given them.
_SQLITE_BATCH = (
    "SELECT max(id), count(*), count(*) - count(line), CAST(group_concat(line, '') AS BLOB) "
    "FROM (SELECT id, {line} AS line FROM data_rows WHERE dataset_id = ? AND id > ? "
    "ORDER BY id LIMIT ?)"
)


def _sqlite_batches(
    conn: Connection, dataset_id: int, renamed: dict[str, str]
) -> Generator[bytes, None, None]:
    """The lines on SQLite, a batch of rows at a time in id order (each batch a query from
    the last id on, in the snapshot's one read transaction). A batch that holds a row SQLite
    cannot write is written by ``_line_maker``."""
    dbapi: Any = conn.connection.dbapi_connection
    checks, params = _metadata_checks(renamed)
    sql = _SQLITE_BATCH.format(line=_SQLITE_LINE.format(metadata_ok=checks))
    slow_sql = (
        f"SELECT {', '.join(COLUMNS)} FROM data_rows WHERE dataset_id = ? AND id > ? "
        "ORDER BY id LIMIT ?"
    )
    line = _line_maker(conn, renamed)
    last, rows = -1, BATCH_ROWS
    while True:
        try:
            found = dbapi.execute(sql, (*params, dataset_id, last, rows)).fetchone()
        except conn.dialect.dbapi.DataError:  # type: ignore[union-attr]
            found = None  # longer than SQLite's longest string: Python writes it
        if found is not None:
            top, count, slow, text = found
            if not count:
                return
            if not slow:
                yield text
                last, rows = top, _next_rows(rows, len(text), count)
                continue
        batch = dbapi.execute(slow_sql, (dataset_id, last, rows)).fetchall()
        if not batch:
            return
        yield "".join([line(row) for row in batch]).encode()
        last = batch[-1][0]


def _next_rows(rows: int, size: int, count: int) -> int:
    """The rows of the next batch: fewer when this one's lines were long."""
    if size <= BATCH_BYTES:
        return min(BATCH_ROWS, rows * 2)
    return max(1, count * BATCH_BYTES // size)


def _metadata_checks(renamed: dict[str, str]) -> tuple[str, list[str]]:
    """SQL that is true when a row's metadata names every custom field in it by its current
    name (the test of ``_metadata_fixer``), and its parameters."""
    checks: list[str] = []
    params: list[str] = []
    for fid, name in renamed.items():
        checks.append("(instr(metadata, ?) = 0 OR instr(metadata, ?) > 0)")
        params += [f'"schema_id":"{fid}"', f'"schema_id":"{fid}","name":{name},']
    if not checks:
        return "1", params
    return "metadata IS NULL OR (" + " AND ".join(checks) + ")", params


def _batches(
    conn: Connection, dataset_id: int, renamed: dict[str, str]
) -> Generator[bytes, None, None]:
    """The lines of the dataset's rows in id order, a batch of rows at a time."""
    if conn.dialect.name == "sqlite" and len(renamed) <= MAX_FIELDS_IN_SQL:
        yield from _sqlite_batches(conn, dataset_id, renamed)
        return
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in COLUMNS)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"SELECT {names} FROM data_rows WHERE dataset_id = {mark} ORDER BY id"
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="tether_export")  # server side: memory stays flat
        cursor.itersize = BATCH_ROWS
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(sql, (dataset_id,))
        line = _line_maker(conn, renamed)
        while batch := cursor.fetchmany(BATCH_ROWS):
            yield "".join([line(row) for row in batch]).encode()
    finally:
        cursor.close()


def _end_sqlite(conn: Connection) -> None:
    dbapi: Any = conn.connection.dbapi_connection
    if dbapi is not None and dbapi.in_transaction:
        dbapi.rollback()


def _line_maker(conn: Connection, renamed: dict[str, str]) -> Callable[[Any], str]:
    """A function from a row tuple (``COLUMNS``) to its NDJSON line."""
    stamp = _stamp_maker(conn)
    dumps = orjson.dumps
    metadata = _metadata_fixer(renamed)

    def line(row: Any) -> str:
        (rid, ds, key, ext, kind, data, attrs, meta, atts, extra, by, created, updated) = row
        return (
            f'{{"id":{rid},"dataset_id":{ds},'
            f'"global_key":{"null" if key is None else dumps(key).decode()},'
            f'"external_id":{"null" if ext is None else dumps(ext).decode()},'
            f'"media_type":"{kind}","row_data":{data},'
            f'"media_attributes":{attrs or "{}"},'
            f'"metadata_fields":{metadata(meta) if meta else "[]"},'
            f'"attachments":{atts or "[]"}{_extra(extra) if extra else ""},'
            f'"created_by":{"null" if by is None else by},'
            f'"created_at":{stamp(created)},"updated_at":{stamp(updated)}}}\n'
        )

    return line


def _extra(text: str) -> str:
    """The source file's other keys, as more members of the line (``,"k":v...``)."""
    kept = {k: v for k, v in orjson.loads(text).items() if k not in OWN_KEYS}
    return "," + orjson.dumps(kept).decode()[1:-1] if kept else ""


def _metadata_fixer(renamed: dict[str, str]) -> Callable[[str], str]:
    """The stored metadata JSON, with the current names of renamed fields."""
    if not renamed:
        return lambda text: text
    markers = [
        (f'"schema_id":"{fid}"', f'"schema_id":"{fid}","name":{name},')
        for fid, name in renamed.items()
    ]

    def fix(text: str) -> str:
        if all(ok in text for marker, ok in markers if marker in text):
            return text  # every custom field in it has its current name
        return _ENTRY.sub(lambda m: _renamed(m, renamed), text)

    return fix


def _renamed(match: re.Match[str], renamed: dict[str, str]) -> str:
    fid, name = match.group(1), match.group(2)
    return f'{{"schema_id":"{fid}","name":{renamed.get(fid, name)}'


def _stamp_maker(conn: Connection) -> Callable[[Any], str]:
    """A stored timestamp (SQLite: text; PostgreSQL: a datetime) as the API writes it, in
    quotes; remembered, since a chunk's rows share their timestamps."""
    dialect = conn.dialect
    parse = DateTime(timezone=True).dialect_impl(dialect).result_processor(dialect, None)
    memo: dict[Any, str] = {}

    def stamp(value: Any) -> str:
        found = memo.get(value)
        if found is None:
            if len(memo) > 10_000:
                memo.clear()
            moment = parse(value) if parse is not None and value is not None else value
            found = memo[value] = orjson.dumps(iso(moment)).decode()
        return found

    return stamp
