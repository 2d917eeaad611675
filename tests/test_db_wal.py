"""A bulk writer's SQLite connection: checkpoints run in a thread while it writes, the log
stays bounded, and the connection goes back to the pool with SQLite's usual settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from tether.db.engine import foreign_keys_unchecked, make_engine
from tether.db.wal import Checkpointer

BLOB = 64 * 1024  # bytes per row written: 16 pages of 4 KiB


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, "
            "parent_id INTEGER NOT NULL REFERENCES parent(id), body BLOB)"
        )
    return engine


def _pragma(conn: Connection, name: str) -> int:
    """Read a setting on the driver's connection (no SQLAlchemy transaction begins)."""
    dbapi: Any = conn.connection.dbapi_connection
    return int(dbapi.execute(f"PRAGMA {name}").fetchone()[0])


def _write_chunk(conn: Connection, first: int, rows: int) -> None:
    with conn.begin():
        conn.execute(
            text("INSERT INTO parent (id) VALUES (:id)"),
            [{"id": i} for i in range(first, first + rows)],
        )
        conn.execute(
            text("INSERT INTO child (parent_id, body) VALUES (:p, randomblob(:n))"),
            [{"p": i, "n": BLOB} for i in range(first, first + rows)],
        )


def test_the_log_is_checkpointed_beside_the_writer_and_stays_bounded(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    wal = tmp_path / "wal.db-wal"
    limit = 4 * 1024 * 1024
    chunk_bytes = 50 * BLOB
    checkpointer = Checkpointer(sqlite_engine, wal_limit=limit)
    largest = 0
    with sqlite_engine.connect() as conn:
        with checkpointer.writer(conn):
            assert _pragma(conn, "wal_autocheckpoint") == 0
            for n in range(40):  # 40 chunks of 3.2 MB: 128 MB through the log
                checkpointer.keep_up()
                _write_chunk(conn, n * 50, 50)
                checkpointer.committed()
                largest = max(largest, wal.stat().st_size)
        # Back to SQLite's own checkpoints once the import is done.
        assert _pragma(conn, "wal_autocheckpoint") == 1000
    # Without checkpoints the log would have grown past 128 MB. The writer waits once the last
    # checkpoint found more than the limit in it, which it learns a chunk or two late.
    assert largest < limit + 6 * chunk_bytes
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM child").scalar_one() == 2000
        busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and copied == frames


def test_without_commits_no_checkpoint_runs_and_the_thread_stops(sqlite_engine: Engine) -> None:
    checkpointer = Checkpointer(sqlite_engine)
    with sqlite_engine.connect() as conn, checkpointer.writer(conn):
        thread = checkpointer._thread
        assert thread is not None and thread.is_alive()
    assert not thread.is_alive()


def test_foreign_keys_are_unchecked_inside_only(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        with foreign_keys_unchecked(conn):
            assert _pragma(conn, "foreign_keys") == 0
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO child (parent_id) VALUES (12345)")
        assert _pragma(conn, "foreign_keys") == 1
        with pytest.raises(Exception, match="FOREIGN KEY"), conn.begin():
            conn.exec_driver_sql("INSERT INTO child (parent_id) VALUES (54321)")


def test_other_databases_are_left_alone(engine: Engine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the PostgreSQL side of the same calls")
    checkpointer = Checkpointer(engine)
    with engine.connect() as conn, foreign_keys_unchecked(conn), checkpointer.writer(conn):
        checkpointer.keep_up()
        checkpointer.committed()
        assert checkpointer._thread is None
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
