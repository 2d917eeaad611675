"""Tasks: an index of the leases ``next-task`` hands out, so the task a user holds is found
without reading the project's tasks.

Revision ID: 0008_tasks
Revises: 0007_projects
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_tasks"
down_revision = "0007_projects"
branch_labels = None
depends_on = None

HELD = sa.text("lease_user_id IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_tasks_project_lease_user",
        "tasks",
        ["project_id", "lease_user_id", "status", "org_id"],
        sqlite_where=HELD,
        postgresql_where=HELD,
    )


def downgrade() -> None:
    # IF EXISTS: SQLite's driver runs DDL outside the migration's transaction, so a downgrade
    # that an older step refused (and rolled back) may have dropped it already.
    op.execute("DROP INDEX IF EXISTS ix_tasks_project_lease_user")
