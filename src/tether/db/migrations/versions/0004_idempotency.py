"""Idempotency keys for every create: the first answer to a request, kept by its key.

Revision ID: 0004_idempotency
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_idempotency"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_idempotency_keys_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_org_created", "idempotency_keys", ["org_id", "created_at"])


def downgrade() -> None:
    # IF EXISTS: on SQLite the driver runs DDL outside the transaction, so a downgrade that
    # failed further down (and was rolled back) has already dropped the table.
    op.execute("DROP TABLE IF EXISTS idempotency_keys")
