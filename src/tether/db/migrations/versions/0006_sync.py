"""Syncs: at most one active sync job per storage, enforced by the database.

- jobs: a partial unique index on ``storage_id`` over the jobs of kind ``sync`` that are
  queued or running. Two starts of one storage's sync (two API calls, a schedule firing on
  two workers at once) cannot both insert a job: the second one's insert fails and it
  returns the job that got in. A partial index works the same on SQLite and PostgreSQL and
  needs no lock on the storage row.

Revision ID: 0006_sync
Revises: 0005_storages
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_sync"
down_revision = "0005_storages"
branch_labels = None
depends_on = None

ACTIVE_SYNC = "kind = 'sync' AND status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_index(
        "uq_jobs_active_sync",
        "jobs",
        ["storage_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_SYNC),
        postgresql_where=sa.text(ACTIVE_SYNC),
    )


def downgrade() -> None:
    # IF EXISTS: SQLite's driver runs DDL outside the migration's transaction, so a downgrade
    # that an older step refused (and rolled back) may have dropped it already.
    op.execute("DROP INDEX IF EXISTS uq_jobs_active_sync")
