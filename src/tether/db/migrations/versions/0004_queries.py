"""Indexes so every combination of data row filters is an index search on both databases.

A listing of a whole organization (with or without a media type) had no index that reads its
rows in id order, and a ``created_after`` / ``created_before`` range had no index at all: each
read the organization's or dataset's rows one by one. Filters that name a global key or an
external id are served by the organization's existing unique key and external id indexes.

Revision ID: 0004_queries
Revises: 0004_idempotency
"""

from alembic import op

revision = "0004_queries"
down_revision = "0004_idempotency"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_data_rows_org_id_id": "org_id, id",
    "ix_data_rows_org_media_type_id": "org_id, media_type, id",
    "ix_data_rows_dataset_created_id": "dataset_id, created_at, id",
    "ix_data_rows_org_created_id": "org_id, created_at, id",
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON data_rows ({columns})")


def downgrade() -> None:
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
