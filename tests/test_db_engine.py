"""Engines: one-off commands hold no pooled connections on PostgreSQL; the server's engine
pools them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.pool import NullPool, QueuePool

from tether.db.engine import make_engine, make_oneoff_engine
from tether.db.tables import organizations


def test_a_oneoff_engine_on_postgresql_pools_nothing(pg_url: str) -> None:
    url = "postgresql+psycopg://" + pg_url.split("://", 1)[1]
    oneoff = make_oneoff_engine(url)
    try:
        assert isinstance(oneoff.pool, NullPool)
        with oneoff.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
        assert oneoff.pool.status() == "NullPool"
    finally:
        oneoff.dispose()
    pooled = make_engine(url)
    try:
        assert isinstance(pooled.pool, QueuePool) and pooled.pool.size() == 10
    finally:
        pooled.dispose()


def test_a_savepoint_first_in_a_transaction_does_not_commit_it(engine: Engine) -> None:
    """A SAVEPOINT before any other write is nested in the transaction on both databases (the
    sqlite3 driver opens no transaction for it by itself, so its RELEASE would commit)."""
    name = f"savepoint-{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        conn.execute(select(organizations.c.id).limit(1)).all()
        with conn.begin_nested():
            conn.execute(insert(organizations).values(name=name, created_at=datetime.now(UTC)))
        conn.execute(insert(organizations).values(name=name + "-2", created_at=datetime.now(UTC)))
        conn.rollback()
    with engine.connect() as conn:
        left = conn.execute(
            select(organizations.c.name).where(organizations.c.name.like(name + "%"))
        ).all()
    assert left == []
