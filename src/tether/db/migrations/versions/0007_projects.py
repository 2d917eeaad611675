"""Labeling projects: projects, their tasks, annotations and predictions, and what exports
wrote to target storages.

- projects: name unique per organization, Label Studio's XML label config.
- tasks: (project, data row), with status, counts and the next-task lease. On SQLite a
  WITHOUT ROWID table (the primary key is its order).
- annotations, predictions: ids never reused (AUTOINCREMENT on SQLite); they belong to a
  task (composite foreign key, deleted with it).
- export_links: (target storage, annotation) -> the version written.
- storages: ``can_delete_objects`` and ``auto_export``, the options of target storages.
- jobs: at most one queued ``export`` job per storage (a partial unique index).

Revision ID: 0007_projects
Revises: 0006_sync
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_projects"
down_revision = "0006_sync"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)
QUEUED_EXPORT = "kind = 'export' AND status = 'queued'"
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _task_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id", "data_row_id"],
        ["tasks.project_id", "tasks.data_row_id"],
        ondelete="CASCADE",
        name=f"fk_{table}_task",
    )


def upgrade() -> None:
    op.add_column(
        "storages",
        sa.Column(
            "can_delete_objects", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column(
        "storages",
        sa.Column("auto_export", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("label_config", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer()),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            ondelete="CASCADE",
            name="fk_projects_org_id_organizations",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("org_id", "name", name="uq_projects_org_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "tasks",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("data_row_id", RowId, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="unlabeled", nullable=False),
        sa.Column("total_annotations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cancelled_annotations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_predictions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lease_user_id", sa.Integer()),
        sa.Column("lease_until", Ts),
        sa.Column("imported_at", Ts),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.CheckConstraint("status IN ('unlabeled', 'labeled', 'skipped')", name="ck_tasks_status"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], ondelete="CASCADE", name="fk_tasks_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["data_row_id"],
            ["data_rows.id"],
            ondelete="CASCADE",
            name="fk_tasks_data_row_id_data_rows",
        ),
        sa.PrimaryKeyConstraint("project_id", "data_row_id", name="pk_tasks"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_tasks_project_status_row", "tasks", ["project_id", "status", "data_row_id"])
    op.create_index("ix_tasks_data_row_id", "tasks", ["data_row_id"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("data_row_id", RowId, nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("lead_time", sa.Float()),
        sa.Column("was_cancelled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("ground_truth", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("completed_by", sa.Integer()),
        sa.Column("updated_by", sa.Integer()),
        sa.Column("parent_prediction", sa.Integer()),
        sa.Column("parent_annotation", sa.Integer()),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        _task_fk("annotations"),
        sa.PrimaryKeyConstraint("id", name="pk_annotations"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_annotations_project_row", "annotations", ["project_id", "data_row_id", "id"]
    )
    op.create_index("ix_annotations_project_id", "annotations", ["project_id", "id"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("data_row_id", RowId, nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=200), server_default="", nullable=False),
        sa.Column("score", sa.Float()),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        _task_fk("predictions"),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_predictions_project_row", "predictions", ["project_id", "data_row_id", "id"]
    )
    op.create_table(
        "export_links",
        sa.Column("storage_id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("written_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["storage_id"],
            ["storages.id"],
            ondelete="CASCADE",
            name="fk_export_links_storage_id_storages",
        ),
        sa.PrimaryKeyConstraint("storage_id", "annotation_id", name="pk_export_links"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "uq_jobs_queued_export",
        "jobs",
        ["storage_id"],
        unique=True,
        sqlite_where=sa.text(QUEUED_EXPORT),
        postgresql_where=sa.text(QUEUED_EXPORT),
    )


def downgrade() -> None:
    # IF EXISTS: SQLite's driver runs DDL outside the migration's transaction, so a downgrade
    # that an older step refused (and rolled back) may have dropped them already.
    op.execute("DROP INDEX IF EXISTS uq_jobs_queued_export")
    for table in ("export_links", "predictions", "annotations", "tasks", "projects"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    # Plain DROP COLUMN (SQLite 3.35+): a batch rebuild of storages would cascade its links.
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("storages")}
    for column in ("auto_export", "can_delete_objects"):
        if column in present:
            op.drop_column("storages", column)
