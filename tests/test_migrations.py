"""Migrations: the newest schema is what ``tables.py`` describes, and an SQLite database made
by an older release keeps its rows (and their cascades) through the upgrade."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text

from tether.catalog.metadata_schema import create_field
from tether.db import tables
from tether.db.engine import foreign_keys_unchecked, make_engine
from tether.db.migrate import alembic_config, upgrade


def test_the_migrated_schema_is_the_model(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert differences == []


SPLIT_ID = "cko8sbczn0002h2dkdaxb5kal"  # the reserved field's id; its key is 2


def _rows_before(conn: object, keys: bool = False) -> None:
    """Three rows with two metadata values each: the reserved split and a custom score, named
    by field id (releases before 0003) or by field key."""
    execute = conn.exec_driver_sql  # type: ignore[attr-defined]
    execute("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', '2026-01-01')")
    execute(
        "INSERT INTO datasets (id, org_id, name, description, created_at, updated_at) "
        "VALUES (1, 1, 'd', '', '2026-01-01', '2026-01-01'), (2, 1, 'e', '', '2026-01-01', "
        "'2026-01-01')"
    )
    key_column, key = (", key", ", 101") if keys else ("", "")
    execute(
        f"INSERT INTO metadata_fields (id, org_id, name, kind, created_at{key_column}) "
        f"VALUES ('cmfscore', 1, 'score', 'number', '2026-01-01'{key})"
    )
    split, score = ("2", "101") if keys else (f"'{SPLIT_ID}'", "'cmfscore'")
    for row_id, dataset_id in ((7, 1), (8, 1), (9, 2)):
        execute(
            "INSERT INTO data_rows (id, org_id, dataset_id, global_key, media_type, row_data, "
            "created_at, updated_at) VALUES "
            f"({row_id}, 1, {dataset_id}, 'k{row_id}', 'IMAGE', '\"s3://b/{row_id}.jpg\"', "
            "'2026-01-01', '2026-01-01')"
        )
        execute(
            "INSERT INTO data_row_metadata VALUES "
            f"({row_id}, {split}, 1, {dataset_id}, 'train', NULL), "
            f"({row_id}, {score}, 1, {dataset_id}, NULL, {row_id}.5)"
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
        _rows_before(conn, keys=True)
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


@pytest.fixture
def blank_engine(backend: str, tmp_path: Path, pg_url: str) -> Iterator[Engine]:
    """An engine on an empty database of the backend under test."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'blank.db'}")
        yield engine
        engine.dispose()
        return
    name = f"tether_migrate_{uuid.uuid4().hex[:10]}"
    server = pg_url.rsplit("/", 1)[0]
    admin = create_engine(
        "postgresql+psycopg://" + server.split("://", 1)[1] + "/postgres",
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine("postgresql+psycopg://" + server.split("://", 1)[1] + f"/{name}")
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def _values(conn: object, field: str) -> list[tuple[object, ...]]:
    execute = conn.exec_driver_sql  # type: ignore[attr-defined]
    return [
        tuple(r)
        for r in execute(
            f"SELECT data_row_id, {field}, value_text, value_num FROM data_row_metadata "
            f"ORDER BY data_row_id, {field}"
        )
    ]


def test_metadata_values_get_field_keys_and_back(blank_engine: Engine) -> None:
    """0003 names each value's field by its integer key (reserved ones fixed, custom ones from
    101) on either database, keeps every value, and its downgrade gives the ids back."""
    config = alembic_config(blank_engine.url.render_as_string(hide_password=False))
    with blank_engine.connect() as conn, foreign_keys_unchecked(conn), conn.begin():
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
        _rows_before(conn)
        conn.exec_driver_sql(
            f"INSERT INTO metadata_values VALUES (1, '{SPLIT_ID}', 'train'), (1, 'cmfscore', 'x')"
        )
    upgrade(blank_engine)
    with blank_engine.begin() as conn:
        assert _values(conn, "field_key") == [
            (r, k, t, n)
            for r in (7, 8, 9)
            for k, t, n in ((2, "train", None), (101, None, r + 0.5))
        ]
        assert sorted(
            conn.exec_driver_sql("SELECT org_id, field_key, value_text FROM metadata_values").all()
        ) == [
            (1, 2, "train"),
            (1, 101, "x"),
        ]
        assert conn.exec_driver_sql("SELECT key FROM metadata_fields").scalar_one() == 101
        assert compare_metadata(MigrationContext.configure(conn), tables.metadata) == []
        # The next custom field takes the next key.
        assert create_field(conn, 1, "weather", "string", role="admin").key == 102
    with blank_engine.connect() as conn, foreign_keys_unchecked(conn), conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
        assert _values(conn, "field_id") == [
            (r, f, t, n)
            for r in (7, 8, 9)
            for f, t, n in ((SPLIT_ID, "train", None), ("cmfscore", None, r + 0.5))
        ]


def _jobs_before(conn: object) -> None:
    """A finished import job of release 0003, with one per-row error; dataset 5 was deleted
    (only its job still names it)."""
    execute = conn.exec_driver_sql  # type: ignore[attr-defined]
    execute("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', '2026-01-01')")
    execute(
        "INSERT INTO datasets (id, org_id, name, description, created_at, updated_at) "
        "VALUES (2, 1, 'd', '', '2026-01-01', '2026-01-01')"
    )
    execute(
        "INSERT INTO jobs (id, org_id, kind, status, dataset_id, params, detected_format, "
        "total, done, created, updated, failed, created_at) VALUES "
        "('j1', 1, 'import', 'completed_with_errors', 5, '{}', 'ndjson/labelbox', 3, 3, 1, 1, "
        "1, '2026-01-01')"
    )
    execute(
        "INSERT INTO job_errors (job_id, item_index, global_key, external_id, code, message) "
        "VALUES ('j1', 2, 'k2', NULL, 'invalid', 'bad')"
    )


def test_jobs_get_generic_tallies_and_back(blank_engine: Engine) -> None:
    """0004_jobs moves an import's created/updated into counts and its format into details,
    its errors' keys into details, on either database; the downgrade gives them back."""
    from tether.catalog import datasets
    from tether.jobs import service

    config = alembic_config(blank_engine.url.render_as_string(hide_password=False))
    with blank_engine.connect() as conn, foreign_keys_unchecked(conn), conn.begin():
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        _jobs_before(conn)
    upgrade(blank_engine)
    with blank_engine.begin() as conn:
        job = service.get(conn, 1, "j1")
        assert job["counts"] == {"created": 1, "updated": 1, "failed": 1}
        assert (job["format"], job["progress"]) == ("ndjson/labelbox", {"done": 3, "total": 3})
        [error], _ = service.errors(conn, 1, "j1")
        assert (error["index"], error["item_key"], error["global_key"]) == (2, "2", "k2")
        assert compare_metadata(MigrationContext.configure(conn), tables.metadata) == []
        # No id goes back, not even the deleted dataset's that only a job remembers.
        assert datasets.create(conn, 1, "next")["id"] > 5
    with blank_engine.connect() as conn, foreign_keys_unchecked(conn), conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
        assert conn.exec_driver_sql(
            "SELECT created, updated, failed, detected_format FROM jobs"
        ).one() == (1, 1, 1, "ndjson/labelbox")
        assert conn.exec_driver_sql(
            "SELECT item_index, global_key, external_id FROM job_errors"
        ).one() == (2, "k2", None)
