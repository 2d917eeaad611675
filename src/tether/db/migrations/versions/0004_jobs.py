"""Generic jobs, leases, dataset deletion as a job, ids never reused.

- jobs: ``created``/``updated`` become keys of a ``counts`` JSON object and
  ``detected_format`` the ``format`` of a ``details`` object; new nullable ``storage_id`` and
  ``project_id``; an owner and a lease (``claimed_by``, ``lease_until``); a
  ``cancel_requested_at``; the ``fingerprint`` of the request an idempotency key was used for.
- job_errors: ``item_key`` (an object key, a row index) and a ``details`` object, which now
  holds the import's ``global_key`` and ``external_id``.
- datasets: ``deleted_at``; the name is unique among datasets not being deleted.
- SQLite: every table a user addresses by an integer id is rebuilt with AUTOINCREMENT, so a
  deleted row's id is never handed out again (PostgreSQL sequences never go back anyway).

Revision ID: 0004_jobs
Revises: 0004_roles
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_jobs"
down_revision = "0004_roles"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)
AUTOINCREMENT_TABLES = ("organizations", "users", "api_keys", "datasets", "job_errors")
NOT_DELETED = sa.text("deleted_at IS NULL")


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _json_object(pairs: dict[str, str]) -> str:
    """SQL for a JSON object (as text) of the given key -> SQL expression pairs."""
    args = ", ".join(f"'{k}', {v}" for k, v in pairs.items())
    return f"json_object({args})" if _sqlite() else f"json_build_object({args})::text"


def _json_field(column: str, key: str, cast: str) -> str:
    if _sqlite():
        return f"json_extract({column}, '$.{key}')"
    return f"(({column})::json ->> '{key}')::{cast}"


def _require_foreign_keys_off() -> None:
    """Rebuilding a parent table with foreign keys on would cascade its drop to every child."""
    if _sqlite() and op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "this migration rebuilds tables; run it with foreign keys off (tether migrate does)"
        )


def _rebuild_sqlite(table: str, autoincrement: bool) -> None:
    with op.batch_alter_table(
        table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def _no_id_goes_back() -> None:
    """A dataset deleted before this migration may still be named by its jobs: the next id is
    past those too."""
    bind = op.get_bind()
    floor = bind.exec_driver_sql("SELECT coalesce(max(dataset_id), 0) FROM jobs").scalar_one()
    if not _sqlite():
        seq_name = "pg_get_serial_sequence('datasets', 'id')"
        op.execute(f"SELECT setval({seq_name}, greatest(nextval({seq_name}), {int(floor)}))")
        return
    seq = bind.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'datasets'").first()
    if seq is None:
        op.execute(f"INSERT INTO sqlite_sequence (name, seq) VALUES ('datasets', {int(floor)})")
    elif int(seq[0]) < int(floor):
        op.execute(f"UPDATE sqlite_sequence SET seq = {int(floor)} WHERE name = 'datasets'")


def upgrade() -> None:
    _require_foreign_keys_off()
    with op.batch_alter_table("jobs") as batch:
        for name in ("storage_id", "project_id"):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
        batch.add_column(sa.Column("counts", sa.Text(), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", Ts, nullable=True))
        batch.add_column(sa.Column("cancel_requested_at", Ts, nullable=True))
    counts = _json_object({"created": "created", "updated": "updated"})
    details = _json_object({"format": "detected_format"})
    op.execute(
        f"UPDATE jobs SET counts = {counts}, details = CASE WHEN detected_format IS NULL "
        f"THEN NULL ELSE {details} END"
    )
    with op.batch_alter_table("jobs") as batch:
        for name in ("detected_format", "created", "updated"):
            batch.drop_column(name)
        batch.drop_index("ix_jobs_org_created")
        batch.create_index("ix_jobs_org_created_id", ["org_id", "created_at", "id"])
        batch.create_index("ix_jobs_status", ["status"])

    with op.batch_alter_table("job_errors") as batch:
        batch.add_column(sa.Column("item_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
    keys = _json_object({"global_key": "global_key", "external_id": "external_id"})
    op.execute(
        f"UPDATE job_errors SET details = {keys}, item_key = CAST(item_index AS TEXT) "
        "WHERE global_key IS NOT NULL OR external_id IS NOT NULL OR item_index IS NOT NULL"
    )
    with op.batch_alter_table("job_errors") as batch:
        batch.drop_column("global_key")
        batch.drop_column("external_id")

    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("deleted_at", Ts, nullable=True))
        batch.drop_constraint("uq_datasets_org_name", type_="unique")
    op.create_index(
        "uq_datasets_org_name",
        "datasets",
        ["org_id", "name"],
        unique=True,
        sqlite_where=NOT_DELETED,
        postgresql_where=NOT_DELETED,
    )
    if _sqlite():
        for table in AUTOINCREMENT_TABLES:
            _rebuild_sqlite(table, autoincrement=True)
    _no_id_goes_back()


def downgrade() -> None:
    _require_foreign_keys_off()
    if _sqlite():
        for table in AUTOINCREMENT_TABLES:
            _rebuild_sqlite(table, autoincrement=False)
    # Datasets whose deletion had not finished go now, with their rows (by cascade).
    op.execute(
        "DELETE FROM data_row_metadata WHERE dataset_id IN "
        "(SELECT id FROM datasets WHERE deleted_at IS NOT NULL)"
    )
    op.execute(
        "DELETE FROM data_rows WHERE dataset_id IN "
        "(SELECT id FROM datasets WHERE deleted_at IS NOT NULL)"
    )
    op.execute("DELETE FROM datasets WHERE deleted_at IS NOT NULL")
    op.drop_index("uq_datasets_org_name", "datasets")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("deleted_at")
        batch.create_unique_constraint("uq_datasets_org_name", ["org_id", "name"])

    with op.batch_alter_table("job_errors") as batch:
        batch.add_column(sa.Column("global_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("external_id", sa.Text(), nullable=True))
    op.execute(
        "UPDATE job_errors SET "
        f"global_key = {_json_field('details', 'global_key', 'text')}, "
        f"external_id = {_json_field('details', 'external_id', 'text')} "
        "WHERE details IS NOT NULL"
    )
    with op.batch_alter_table("job_errors") as batch:
        batch.drop_column("item_key")
        batch.drop_column("details")

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("detected_format", sa.String(32), nullable=True))
        batch.add_column(sa.Column("created", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("updated", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE jobs SET "
        f"created = coalesce({_json_field('counts', 'created', 'bigint')}, 0), "
        f"updated = coalesce({_json_field('counts', 'updated', 'bigint')}, 0), "
        f"detected_format = {_json_field('details', 'format', 'text')}"
    )
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("created", server_default=None)
        batch.alter_column("updated", server_default=None)
        batch.drop_index("ix_jobs_status")
        batch.drop_index("ix_jobs_org_created_id")
        batch.create_index("ix_jobs_org_created", ["org_id", "created_at"])
        for name in (
            "storage_id",
            "project_id",
            "fingerprint",
            "details",
            "counts",
            "claimed_by",
            "lease_until",
            "cancel_requested_at",
        ):
            batch.drop_column(name)
