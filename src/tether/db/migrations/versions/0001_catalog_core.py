"""catalog core

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:25:41.500433
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "id_blocks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("next_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_id_blocks")),
    )
    op.create_table(
        "metadata_values",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("field_id", sa.String(length=40), nullable=False),
        sa.Column("value_text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "org_id", "field_id", "value_text", name=op.f("pk_metadata_values")
        ),
    )
    op.bulk_insert(
        sa.table("id_blocks", sa.column("name", sa.String), sa.column("next_id", sa.BigInteger)),
        [{"name": "data_rows", "next_id": 1}],
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
        sa.UniqueConstraint("name", name=op.f("uq_organizations_name")),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_datasets_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("org_id", "name", name="uq_datasets_org_name"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("params", sa.Text(), nullable=True),
        sa.Column("detected_format", sa.String(length=32), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_jobs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("org_id", "idempotency_key", name="uq_jobs_org_idempotency_key"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_org_created", ["org_id", "created_at"], unique=False)

    op.create_table(
        "metadata_fields",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("dimension", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_metadata_fields_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadata_fields")),
        sa.UniqueConstraint("org_id", "name", name="uq_metadata_fields_org_name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_users_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_org_id"), ["org_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "data_rows",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("global_key", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("row_data", sa.Text(), nullable=False),
        sa.Column("media_attributes", sa.Text(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("attachments", sa.Text(), nullable=True),
        sa.Column("extra", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_data_rows_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_rows")),
        sa.UniqueConstraint("org_id", "global_key", name="uq_data_rows_org_global_key"),
    )
    with op.batch_alter_table("data_rows", schema=None) as batch_op:
        batch_op.create_index("ix_data_rows_dataset_id_id", ["dataset_id", "id"], unique=False)
        batch_op.create_index(
            "ix_data_rows_dataset_media_type_id", ["dataset_id", "media_type", "id"], unique=False
        )
        batch_op.create_index(
            "ix_data_rows_org_external_id", ["org_id", "external_id"], unique=False
        )

    op.create_table(
        "job_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("item_index", sa.BigInteger(), nullable=True),
        sa.Column("global_key", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_errors_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_errors")),
    )
    with op.batch_alter_table("job_errors", schema=None) as batch_op:
        batch_op.create_index("ix_job_errors_job_id_id", ["job_id", "id"], unique=False)

    op.create_table(
        "data_row_metadata",
        sa.Column("data_row_id", sa.BigInteger(), nullable=False),
        sa.Column("field_id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["data_row_id"],
            ["data_rows.id"],
            name=op.f("fk_data_row_metadata_data_row_id_data_rows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("data_row_id", "field_id", name=op.f("pk_data_row_metadata")),
    )
    with op.batch_alter_table("data_row_metadata", schema=None) as batch_op:
        batch_op.create_index(
            "ix_data_row_metadata_dataset_num",
            ["dataset_id", "field_id", "value_num", "data_row_id"],
            unique=False,
            sqlite_where=sa.text("value_num IS NOT NULL"),
            postgresql_where=sa.text("value_num IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_data_row_metadata_dataset_text",
            ["dataset_id", "field_id", "value_text", "data_row_id"],
            unique=False,
            sqlite_where=sa.text("value_text IS NOT NULL"),
            postgresql_where=sa.text("value_text IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_data_row_metadata_org_num",
            ["org_id", "field_id", "value_num", "data_row_id"],
            unique=False,
            sqlite_where=sa.text("value_num IS NOT NULL"),
            postgresql_where=sa.text("value_num IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_data_row_metadata_org_text",
            ["org_id", "field_id", "value_text", "data_row_id"],
            unique=False,
            sqlite_where=sa.text("value_text IS NOT NULL"),
            postgresql_where=sa.text("value_text IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("data_row_metadata", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_data_row_metadata_org_text",
            sqlite_where=sa.text("value_text IS NOT NULL"),
            postgresql_where=sa.text("value_text IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_data_row_metadata_org_num",
            sqlite_where=sa.text("value_num IS NOT NULL"),
            postgresql_where=sa.text("value_num IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_data_row_metadata_dataset_text",
            sqlite_where=sa.text("value_text IS NOT NULL"),
            postgresql_where=sa.text("value_text IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_data_row_metadata_dataset_num",
            sqlite_where=sa.text("value_num IS NOT NULL"),
            postgresql_where=sa.text("value_num IS NOT NULL"),
        )

    op.drop_table("data_row_metadata")
    with op.batch_alter_table("job_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_job_errors_job_id_id")

    op.drop_table("job_errors")
    with op.batch_alter_table("data_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_data_rows_org_external_id")
        batch_op.drop_index("ix_data_rows_dataset_media_type_id")
        batch_op.drop_index("ix_data_rows_dataset_id_id")

    op.drop_table("data_rows")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_user_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_org_id"))

    op.drop_table("users")
    op.drop_table("metadata_fields")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_org_created")

    op.drop_table("jobs")
    op.drop_table("datasets")
    op.drop_table("organizations")
    op.drop_table("metadata_values")
    op.drop_table("id_blocks")
