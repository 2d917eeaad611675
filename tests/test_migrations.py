"""Migrations: the newest schema is what ``tables.py`` describes, and an SQLite database made
by an older release keeps its rows (and their cascades) through the upgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from tether.db import tables
from tether.db.engine import foreign_keys_unchecked, make_engine
from tether.db.migrate import alembic_config, upgrade


def test_the_migrated_schema_is_the_model(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert differences == []


def _rows_before(conn: object) -> None:
    execute = conn.exec_driver_sql  # type: ignore[attr-defined]
    execute("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', '2026-01-01')")
    execute(
        "INSERT INTO datasets (id, org_id, name, description, created_at, updated_at) "
        "VALUES (1, 1, 'd', '', '2026-01-01', '2026-01-01'), (2, 1, 'e', '', '2026-01-01', "
        "'2026-01-01')"
    )
    for row_id, dataset_id in ((7, 1), (8, 1), (9, 2)):
        execute(
            "INSERT INTO data_rows (id, org_id, dataset_id, global_key, media_type, row_data, "
            "created_at, updated_at) VALUES "
            f"({row_id}, 1, {dataset_id}, 'k{row_id}', 'IMAGE', '\"s3://b/{row_id}.jpg\"', "
            "'2026-01-01', '2026-01-01')"
        )
        execute(
            "INSERT INTO data_row_metadata VALUES "
            f"({row_id}, 'split', 1, {dataset_id}, 'train', NULL), "
            f"({row_id}, 'score', 1, {dataset_id}, NULL, {row_id}.5)"
        )


def test_an_sqlite_database_from_release_0001_keeps_its_rows(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    url = engine.url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        _rows_before(conn)

    upgrade(engine)

    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT id, global_key FROM data_rows ORDER BY id").all() == [
            (7, "k7"),
            (8, "k8"),
            (9, "k9"),
        ]
        assert conn.exec_driver_sql(
            "SELECT count(*), sum(value_num) FROM data_row_metadata"
        ).one() == (6, 25.5)
        # data_rows.id is the row id now; data_row_metadata has none.
        assert conn.exec_driver_sql("SELECT count(*) FROM data_rows WHERE rowid = id").scalar() == 3
        ddl = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'data_row_metadata'")
        ).scalar_one()
        assert ddl.rstrip().endswith("WITHOUT ROWID")
        differences = compare_metadata(MigrationContext.configure(conn), tables.metadata)
        assert differences == []
        # The cascades were rebuilt too: a dataset takes its rows and their metadata along.
        conn.exec_driver_sql("DELETE FROM datasets WHERE id = 1")
        assert conn.exec_driver_sql("SELECT id FROM data_rows").scalars().all() == [9]
        remaining = conn.exec_driver_sql("SELECT DISTINCT data_row_id FROM data_row_metadata")
        assert remaining.scalars().all() == [9]
    engine.dispose()


def test_the_sqlite_storage_change_downgrades(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    upgrade(engine)
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        _rows_before(conn)
    with engine.begin() as conn:
        # With foreign keys on, the rebuild refuses to run rather than lose the metadata.
        config.attributes["connection"] = conn
        with pytest.raises(RuntimeError, match="foreign keys off"):
            command.downgrade(config, "0001")
        conn.rollback()
    with engine.connect() as conn, foreign_keys_unchecked(conn), conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
        ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'data_rows'"))
        assert "id BIGINT NOT NULL" in ddl.scalar_one()
        assert conn.exec_driver_sql("SELECT count(*) FROM data_row_metadata").scalar() == 6
    engine.dispose()
