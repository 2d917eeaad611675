"""Engines: one-off commands hold no pooled connections on PostgreSQL; the server's engine
pools them."""

from __future__ import annotations

from sqlalchemy.pool import NullPool, QueuePool

from tether.db.engine import make_engine, make_oneoff_engine


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
