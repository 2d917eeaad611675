"""Run Alembic migrations programmatically (``tether migrate`` and ``tether serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from tether.db.engine import foreign_keys_unchecked

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    """Migrate to the newest schema in one transaction. On SQLite foreign keys are off meanwhile
    (migrations rebuild tables, and dropping a table would cascade) and checked at the end."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn, foreign_keys_unchecked(conn), conn.begin():
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        if conn.dialect.name == "sqlite":
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
