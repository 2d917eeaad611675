"""The link table of a storage: (object key, item index) -> data row, with the object's
version. A sync reads it in key order beside the listing (``read``: pages by keyset, so no
query per object and no long-lived cursor), and changes it in the transaction that writes
the rows (``insert``, ``set_versions``, ``remove``).

Keys compare by their UTF-8 bytes in the database (SQLite's BINARY collation, PostgreSQL's
"C" on the key column), which is the order of Python's ``str`` comparison and the order
every backend lists in: the merge in ``sync.diff`` relies on the three being one order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Connection, Engine, delete

from tether.db.tables import data_row_metadata, data_rows

PAGE = 5000  # links a read fetches at a time
_DELETE_BATCH = 1000


@dataclass(slots=True)
class Linked:
    """What the links say of one object: its version and its rows by item index."""

    key: str
    version: str | None
    rows: dict[int, int] = field(default_factory=dict)  # item index -> data row id


LinkRow = tuple[str, int, int, str | None]  # key, item index, data row id, version


def pages(
    engine: Engine,
    storage_id: int,
    after: str | None = None,
    until: str | None = None,
    page: int = PAGE,
) -> Iterator[list[LinkRow]]:
    """The storage's links in (key, item index) order, with keys after ``after`` and up to
    ``until`` (either open when None), a page per short query: a range of the primary key
    from the last one read (a row-value comparison, which both databases seek to)."""
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    head = (
        'SELECT "key", item_index, data_row_id, version FROM storage_links '
        f"WHERE storage_id = {mark}"
    )
    tail = (f' AND "key" <= {mark}' if until is not None else "") + (
        f' ORDER BY "key", item_index LIMIT {int(page)}'
    )
    bound: tuple[object, ...] = (until,) if until is not None else ()
    if after is not None:
        sql, params = f'{head} AND "key" > {mark}{tail}', (storage_id, after, *bound)
    else:
        sql, params = head + tail, (storage_id, *bound)
    following = f'{head} AND ("key", item_index) > ({mark}, {mark}){tail}'
    while True:
        with engine.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, params)
                rows = cast(list[LinkRow], cursor.fetchall())
            finally:
                cursor.close()
        if rows:
            yield rows
        if len(rows) < page:
            return
        sql, params = following, (storage_id, rows[-1][0], rows[-1][1], *bound)


def read(
    engine: Engine,
    storage_id: int,
    after: str | None = None,
    until: str | None = None,
    page: int = PAGE,
) -> Iterator[Linked]:
    """The linked objects of a storage in key order (``pages`` grouped by key)."""
    current: Linked | None = None
    for rows in pages(engine, storage_id, after, until, page):
        for key, index, row_id, version in rows:
            if current is None or current.key != key:
                if current is not None:
                    yield current
                current = Linked(key, version)
            current.rows[index] = row_id
    if current is not None:
        yield current


def insert(
    conn: Connection, storage_id: int, links: Sequence[tuple[str, int, int, str | None]]
) -> None:
    """New links, (key, item index, data row id, version) each, with the driver's own bulk
    path (COPY on PostgreSQL, ``executemany`` on SQLite)."""
    if not links:
        return
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            sql = (
                "COPY storage_links (storage_id, key, item_index, data_row_id, version) "
                "FROM STDIN (FORMAT BINARY)"
            )
            with cursor.copy(sql) as copy:
                copy.set_types(["int4", "text", "int4", "int8", "text"])
                for key, index, row_id, version in links:
                    copy.write_row((storage_id, key, index, row_id, version))
        else:
            cursor.executemany(
                "INSERT INTO storage_links (storage_id, key, item_index, data_row_id, version) "
                "VALUES (?, ?, ?, ?, ?)",
                [(storage_id, k, i, r, v) for k, i, r, v in links],
            )
    finally:
        cursor.close()


def set_versions(
    conn: Connection, storage_id: int, versions: Sequence[tuple[str, str | None]]
) -> None:
    """Record the new version of objects whose rows were brought up to date."""
    if not versions:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(
            f"UPDATE storage_links SET version = {mark} WHERE storage_id = {mark} AND key = {mark}",
            [(version, storage_id, key) for key, version in versions],
        )
    finally:
        cursor.close()


def remove(conn: Connection, storage_id: int, items: Sequence[tuple[str, int, int]]) -> int:
    """Delete links (key, item index, data row id) and their data rows (with their metadata
    values); returns the rows deleted. A row someone deleted meanwhile is simply gone.

    Links go one statement each by their whole primary key (``executemany``): SQLite seeks
    a row-value ``IN`` list on ``storage_id`` only, so that would read every link of the
    storage for each batch, a sync's time growing with the store times the chunks."""
    removed = 0
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    by_key = (
        f'DELETE FROM storage_links WHERE storage_id = {mark} AND "key" = {mark} '
        f"AND item_index = {mark}"
    )
    for start in range(0, len(items), _DELETE_BATCH):
        batch = items[start : start + _DELETE_BATCH]
        row_ids = [row_id for _key, _index, row_id in batch]
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(by_key, [(storage_id, key, index) for key, index, _row in batch])
        finally:
            cursor.close()
        conn.execute(delete(data_row_metadata).where(data_row_metadata.c.data_row_id.in_(row_ids)))
        removed += conn.execute(delete(data_rows).where(data_rows.c.id.in_(row_ids))).rowcount
    return removed
