"""Exporting a dataset: every row, every field, one JSON object a line (NDJSON), in id order,
in the shape ``queries.to_public`` gives (so the file imports again as it is).

An export is a consistent snapshot: the dataset is looked up, its rows counted and read in
one read transaction (PostgreSQL: REPEATABLE READ, READ ONLY; SQLite: one read transaction,
which WAL keeps as a snapshot while writers go on). Rows written or deleted meanwhile (even
the whole dataset) do not change what the export holds. ``Export.rows`` is the number of
lines the stream will hold, known before the first one is sent (the API sends it as the
``X-Tether-Export-Rows`` header); a stream that fails part way raises, which the API turns
into an aborted response (no terminating chunk), never a short file that looks complete.

It is the API's heaviest read, so it avoids per-row Python where it can: rows come from the
driver's own cursor in big batches (a server-side cursor on PostgreSQL), and each line is
spliced from the JSON text the row already stores; only metadata entries whose field was
renamed since, and rows with extra keys, are parsed and written again.
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
        conn = _begin_snapshot(conn)
        dataset_id = int(datasets.get(conn, org_id, dataset)["id"])
        count = conn.execute(
            select(func.count()).where(data_rows.c.dataset_id == dataset_id)
        ).scalar_one()
        renamed = _renames(conn, org_id)
    except BaseException:
        conn.close()
        raise
    return Export(dataset_id, int(count), _chunks(conn, dataset_id, renamed))


def _begin_snapshot(conn: Connection) -> Connection:
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
    finally:
        try:
            conn.rollback() if conn.dialect.name == "postgresql" else _end_sqlite(conn)
        finally:
            conn.close()


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
