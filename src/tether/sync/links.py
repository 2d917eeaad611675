"""The link table of a storage: (object key, item index) -> data row, with the object's
version. A sync reads it in key order beside the listing (``pages``: by keyset, so no
query per object and no long-lived cursor), and changes it in the transaction that writes
the rows (``insert``, ``set_versions``, ``remove``).

Keys compare by their UTF-8 bytes in the database (SQLite's BINARY collation, PostgreSQL's
"C" on the key column), which is the order of Python's ``str`` comparison and the order
every backend lists in: the merge in ``sync.diff`` relies on the three being one order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, delete

from tether.db.tables import data_row_metadata, data_rows

PAGE = 5000  # links a read fetches at a time
_DELETE_BATCH = 1000
_SEP = "\x1e"  # between the values of a page's aggregates (a key holding it is read row-wise)


@dataclass(slots=True)
class Linked:
    """What the links say of one object: its version and its rows by item index."""

    key: str
    version: str | None
    rows: dict[int, int] = field(default_factory=dict)  # item index -> data row id


class LinkPage(NamedTuple):
    """A page of links in (key, item index) order, as parallel lists (a version the table
    does not know is "")."""

    keys: list[str]
    items: list[int]
    row_ids: list[int]
    versions: list[str]


def pages(
    engine: Engine | Connection,
    storage_id: int,
    after: str | None = None,
    until: str | None = None,
    page: int = PAGE,
) -> Iterator[LinkPage]:
    """The storage's links in (key, item index) order, with keys after ``after`` and up to
    ``until`` (either open when None), a page per short query: a range of the primary key
    from the last one read (a row-value comparison, which both databases seek to).

    A page comes back as one row of four aggregated strings, split here. That is about as
    fast as fetching its rows, and it matters beside a listing in another thread: SQLite's
    driver lets go of the GIL for every row it steps to, so row by row the two threads hand
    the GIL back and forth once per link (a no-op re-sync took twice as long as listing)."""
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    sqlite = engine.dialect.name == "sqlite"
    head = (
        "SELECT \"key\", item_index, data_row_id, coalesce(version, '') AS version "
        f"FROM storage_links WHERE storage_id = {mark}"
    )
    tail = (f' AND "key" <= {mark}' if until is not None else "") + (
        f' ORDER BY "key", item_index LIMIT {int(page)}'
    )
    bound: tuple[object, ...] = (until,) if until is not None else ()
    if after is not None:
        rows_sql, params = f'{head} AND "key" > {mark}{tail}', (storage_id, after, *bound)
    else:
        rows_sql, params = head + tail, (storage_id, *bound)
    following = f'{head} AND ("key", item_index) > ({mark}, {mark}){tail}'
    while True:
        with _cursor(engine) as cursor:
            found = _aggregated(cursor, rows_sql, params, sqlite)
            if found is None:  # a separator inside a key or version
                cursor.execute(rows_sql, params)
                rows = cursor.fetchall()
                found = LinkPage(*(list(column) for column in zip(*rows, strict=True)))
        if found.keys:
            yield found
        if len(found.keys) < page:
            return
        params = (storage_id, found.keys[-1], found.items[-1], *bound)
        rows_sql = following


@contextmanager
def _cursor(source: Engine | Connection) -> Iterator[Any]:
    """A DB-API cursor: of a connection of the engine's, or of the connection given."""
    with nullcontext(source) if isinstance(source, Connection) else source.connect() as conn:
        cursor = conn.connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()


def _aggregated(
    cursor: Any, rows_sql: str, params: tuple[object, ...], sqlite: bool
) -> LinkPage | None:
    """The page of ``rows_sql`` from one row of aggregates; None when a value holds the
    separator (or, on SQLite, whose ``group_concat`` promises no order, when the keys come
    out of order)."""
    if sqlite:
        agg = [f"group_concat({column}, char(30))" for column in _COLUMNS]
    else:
        order = ' ORDER BY "key", item_index'
        agg = [f"string_agg({column}::text, chr(30){order})" for column in _COLUMNS]
    cursor.execute(f"SELECT count(*), {', '.join(agg)} FROM ({rows_sql}) AS page", params)
    count, keys, items, row_ids, versions = cursor.fetchone()
    if not count:
        return LinkPage([], [], [], [])
    key_list, version_list = keys.split(_SEP), versions.split(_SEP)
    if len(key_list) != count or len(version_list) != count or key_list != sorted(key_list):
        return None
    return LinkPage(
        key_list,
        list(map(int, items.split(_SEP))),
        list(map(int, row_ids.split(_SEP))),
        version_list,
    )


_COLUMNS = ('"key"', "item_index", "data_row_id", "version")


def read(
    engine: Engine | Connection,
    storage_id: int,
    after: str | None = None,
    until: str | None = None,
    page: int = PAGE,
) -> Iterator[Linked]:
    """The linked objects of a storage in key order (``pages`` grouped by key)."""
    current: Linked | None = None
    for found in pages(engine, storage_id, after, until, page):
        for key, index, row_id, version in zip(*found, strict=True):
            if current is None or current.key != key:
                if current is not None:
                    yield current
                current = Linked(key, version)
            current.rows[index] = row_id
    if current is not None:
        yield current


class Links:
    """A storage's links, read by key range as a sync compares them with its listing, on
    one connection that holds no transaction between its queries (autocommit: no snapshot
    kept open, no round trip to begin or end one); a context manager."""

    def __init__(self, engine: Engine, storage_id: int) -> None:
        self.engine, self.storage_id = engine, storage_id
        self._conn: Connection | None = None
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        # Neither database promises to aggregate in the order of the rows it is given (both
        # do): were they out of order, the strings would differ, and the caller pairs the
        # objects one by one. No ORDER BY in the aggregate: PostgreSQL would sort again.
        if engine.dialect.name == "sqlite":
            keys, versions = 'group_concat("key", char(30))', "group_concat(version, char(30))"
        else:
            keys, versions = 'string_agg("key", chr(30))', "string_agg(version, chr(30))"
        rows = (
            "SELECT \"key\", item_index, coalesce(version, '') AS version FROM storage_links "
            f'WHERE storage_id = {mark} AND "key" <= {mark}'
        )
        tail = f' ORDER BY "key", item_index LIMIT {mark}'
        head = f"SELECT count(*), {keys}, {versions} FROM "
        self._same_sql = (
            f"{head}({rows}{tail}) AS page",
            f'{head}({rows} AND "key" > {mark}{tail}) AS page',
        )

    def __enter__(self) -> Links:
        self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _source(self) -> Engine | Connection:
        return self._conn if self._conn is not None else self.engine

    def read(self, after: str | None, until: str | None) -> Iterator[Linked]:
        """The linked objects with keys after ``after`` and up to ``until``."""
        return read(self._source(), self.storage_id, after, until)

    def same(self, after: str | None, last: str, keys: list[str], versions: list[str]) -> bool:
        """Whether the links with keys after ``after`` and up to ``last`` are exactly
        ``keys`` (in strict order, one link each) with ``versions``: one query that joins
        them in the database, compared with the page joined here. False when it cannot tell
        that way (a key or version holds the separator): the caller then pairs them one by
        one, which is always right."""
        n = len(keys)
        joined_keys, joined_versions = _SEP.join(keys), _SEP.join(versions)
        if joined_keys.count(_SEP) != n - 1 or joined_versions.count(_SEP) != n - 1:
            return False
        params: tuple[object, ...] = (self.storage_id, last, n + 1)
        sql = self._same_sql[0]
        if after is not None:
            sql, params = self._same_sql[1], (self.storage_id, last, after, n + 1)
        with _cursor(self._source()) as cursor:
            cursor.execute(sql, params)
            count, linked_keys, linked_versions = cursor.fetchone() or (0, None, None)
        return count == n and linked_keys == joined_keys and linked_versions == joined_versions


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
