"""Engine creation: SQLite gets WAL and sane pragmas; PostgreSQL goes through psycopg 3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA cache_size=-16384",  # 16 MiB a connection: bounded by the pool size
    "PRAGMA temp_store=MEMORY",
)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_begin_before_savepoint)
        return engine
    if "poolclass" not in kwargs:  # sizes belong to the default QueuePool only
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_oneoff_engine(url: str) -> Engine:
    """An engine without pooling on PostgreSQL, for one-off commands: nothing stays open."""
    return (
        make_engine(url, poolclass=NullPool) if not url.startswith("sqlite") else make_engine(url)
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_begin_before_savepoint(conn: Connection, _name: str | None) -> None:
    """The sqlite3 driver opens a transaction only before an INSERT, UPDATE or DELETE, so a
    SAVEPOINT ahead of them would be the outermost transaction and its RELEASE would commit
    (and a later rollback keep what it wrote). Begin the real one first: IMMEDIATE, since a
    savepoint is about to write, and a deferred transaction that has read could not take
    the write lock once another writer committed."""
    dbapi: Any = conn.connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:
        dbapi.execute("BEGIN IMMEDIATE")


def is_sqlite(engine_or_conn: Any) -> bool:
    return bool(engine_or_conn.dialect.name == "sqlite")


def refresh_statistics(engine: Engine) -> None:
    """Let the query planner see the data's new shape after a bulk write. SQLite samples a
    few hundred rows per index (cheap at any size); PostgreSQL's autovacuum does this itself."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=400")
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


@contextmanager
def foreign_keys_unchecked(conn: Connection) -> Iterator[None]:
    """SQLite checks no foreign keys on ``conn`` while inside (it must be outside a
    transaction): for migrations that rebuild tables (SQLite's own procedure), and for a bulk
    writer that inserts the parents of what it writes itself, where each check is one more
    index search per row. Cascading deletes are off too."""
    if conn.dialect.name != "sqlite":
        yield
        return
    dbapi: Any = conn.connection.dbapi_connection
    dbapi.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        dbapi.execute("PRAGMA foreign_keys=ON")
