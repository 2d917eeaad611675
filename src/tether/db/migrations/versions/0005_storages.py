"""Storage connections and what their syncs made.

- organizations: ``external_id``, generated for every organization (the sts:ExternalId of
  IAM-role access), unique.
- storages: one row a connection (type, plain config as JSON, encrypted secrets, options,
  schedule).
- storage_links: (storage, object key, item index) -> data row, the record that keeps syncs
  exact. On SQLite a WITHOUT ROWID table (the key order is the table's order); on
  PostgreSQL the key is compared in the "C" collation, byte order, as listings are.

Revision ID: 0005_storages
Revises: 0004_jobs
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005_storages"
down_revision = "0004_jobs"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)


def new_external_id() -> str:
    return "tether-" + secrets.token_hex(16)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.add_column("organizations", sa.Column("external_id", sa.String(length=64)))
    orgs = sa.table("organizations", sa.column("id"), sa.column("external_id"))
    for (org_id,) in bind.execute(sa.select(orgs.c.id)).all():
        bind.execute(orgs.update().where(orgs.c.id == org_id).values(external_id=new_external_id()))
    op.create_index("uq_organizations_external_id", "organizations", ["external_id"], unique=True)
    op.create_table(
        "storages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer()),
        sa.Column("project_id", sa.Integer()),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("secrets", sa.Text()),
        sa.Column("regex_filter", sa.Text()),
        sa.Column("recursive", sa.Boolean(), nullable=False),
        sa.Column("treat_every_object_as_source_file", sa.Boolean(), nullable=False),
        sa.Column("use_signed_urls", sa.Boolean(), nullable=False),
        sa.Column("signed_url_ttl_minutes", sa.Integer(), nullable=False),
        sa.Column("remove_missing", sa.Boolean(), nullable=False),
        sa.Column("sync_every_minutes", sa.Integer()),
        sa.Column("next_sync_at", Ts),
        sa.Column("last_sync_job_id", sa.String(length=32)),
        sa.Column("created_by", sa.Integer()),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("updated_at", Ts, nullable=False),
        sa.CheckConstraint("role IN ('source', 'target')", name="ck_storages_role"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name="fk_storages_org_id_organizations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_storages_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_storages"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_storages_org_id_id", "storages", ["org_id", "id"])
    op.create_index("ix_storages_dataset_id", "storages", ["dataset_id"])
    op.create_index("ix_storages_next_sync_at", "storages", ["next_sync_at"])
    key_type = sa.Text() if sqlite else sa.Text(collation="C")
    op.create_table(
        "storage_links",
        sa.Column("storage_id", sa.Integer(), nullable=False),
        sa.Column("key", key_type, nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column(
            "data_row_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("version", sa.Text()),
        sa.ForeignKeyConstraint(
            ["storage_id"],
            ["storages.id"],
            name="fk_storage_links_storage_id_storages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["data_row_id"],
            ["data_rows.id"],
            name="fk_storage_links_data_row_id_data_rows",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("storage_id", "key", "item_index", name="pk_storage_links"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_storage_links_data_row_id", "storage_links", ["data_row_id"])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        # The earlier downgrades rebuild tables and need it; refuse before changing anything.
        raise RuntimeError("downgrade with foreign keys off (tether migrate does)")
    op.drop_index("ix_storage_links_data_row_id", table_name="storage_links")
    op.drop_table("storage_links")
    for name in ("ix_storages_next_sync_at", "ix_storages_dataset_id", "ix_storages_org_id_id"):
        op.drop_index(name, table_name="storages")
    op.drop_table("storages")
    op.drop_index("uq_organizations_external_id", table_name="organizations")
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild of organizations would cascade.
    op.execute("ALTER TABLE organizations DROP COLUMN external_id")
