"""Exports read only what changed: a change sequence of each project's annotations.

- projects.annotation_seq: the last number handed out (``labels`` takes the next ones by
  raising it, in the save's transaction; the row lock orders them by commit).
- annotations.seq: the number of the annotation's last save, unique within its project
  (existing ones get their id, the project's counter their largest id).
- storages.export_seq: a target storage holds every annotation of its project saved at or
  below this number (exports read only those above it).

Revision ID: 0009_export_seq
Revises: 0008_tasks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_export_seq"
down_revision = "0008_tasks"
branch_labels = None
depends_on = None


def _seq(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    op.add_column("projects", _seq("annotation_seq"))
    op.add_column("annotations", _seq("seq"))
    op.add_column("storages", _seq("export_seq"))
    op.execute("UPDATE annotations SET seq = id")
    op.execute(
        "UPDATE projects SET annotation_seq = COALESCE("
        "(SELECT MAX(id) FROM annotations WHERE annotations.project_id = projects.id), 0)"
    )
    op.create_index("ix_annotations_project_seq", "annotations", ["project_id", "seq"], unique=True)


def downgrade() -> None:
    # IF EXISTS and plain DROP COLUMN (SQLite 3.35+), as 0007_projects does: a batch rebuild
    # of storages would cascade its links, and SQLite runs DDL outside the transaction.
    op.execute("DROP INDEX IF EXISTS ix_annotations_project_seq")
    for table, column in (
        ("storages", "export_seq"),
        ("annotations", "seq"),
        ("projects", "annotation_seq"),
    ):
        if column in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}:
            op.drop_column(table, column)
