"""Roles and web sign-ins: ``users.role`` ('admin' or 'member') replaces ``users.is_admin``,
and ``sessions`` holds the hashed tokens of signed-in browsers.

On SQLite the users table is rebuilt (batch mode); dropping the old one with foreign keys on
would cascade to every API key, so the migration refuses to run that way.

Revision ID: 0004_roles
Revises: 0004_queries
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_roles"
down_revision = "0004_queries"
branch_labels = None
depends_on = None

Ts = sa.DateTime(timezone=True)


def _require_foreign_keys_off() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "this migration rebuilds users; run it with foreign keys off (tether migrate does)"
        )


def upgrade() -> None:
    _require_foreign_keys_off()
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=16), nullable=False, server_default="member")
        )
    op.execute("UPDATE users SET role = 'admin' WHERE is_admin")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("is_admin")
        batch.create_check_constraint("ck_users_role", "role IN ('admin', 'member')")
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", Ts, nullable=False),
        sa.Column("expires_at", Ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sessions_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])


def downgrade() -> None:
    _require_foreign_keys_off()
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    op.drop_table("sessions")
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE users SET is_admin = (role = 'admin')")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_role", type_="check")
        batch.drop_column("role")
        batch.alter_column("is_admin", server_default=None)
