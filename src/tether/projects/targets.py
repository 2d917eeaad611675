"""Starting exports of a project's annotations to its target storages (jobs of kind
``export``, run by ``projects.target_export``).

A target storage holds at most one *queued* export (the partial unique index
``uq_jobs_queued_export``): saves that come while one waits add nothing, since it will see
them; a save that comes while one runs queues the next, since the running one may have
read past the saved annotation already. Queuing is one insert per target storage that the
database deduplicates, so an annotation save pays almost nothing for it.

Call ``queue_auto_exports`` in the transaction of every annotation save (create, update,
delete; of one annotation or many), then, once that transaction has committed, enqueue the
ids it returned (``JobQueue.enqueue``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from tether.db.tables import jobs, storages
from tether.errors import Invalid, NotFound
from tether.jobs import service

KIND = "export"
COUNTS = ("written", "unchanged", "deleted")


def queue_auto_exports(conn: Connection, org_id: int, project_id: int) -> list[str]:
    """Queue an export to every ``auto_export`` target storage of the project that has
    none queued; the ids of the jobs queued now (enqueue them after the commit)."""
    targets = conn.execute(
        select(storages.c.id).where(
            storages.c.org_id == org_id,
            storages.c.project_id == project_id,
            storages.c.role == "target",
            storages.c.auto_export.is_(True),
        )
    ).scalars()
    queued = []
    for storage_id in targets:
        job_id = _queue(conn, org_id, project_id, int(storage_id), None)
        if job_id is not None:
            queued.append(job_id)
    return queued


def _queue(
    conn: Connection, org_id: int, project_id: int, storage_id: int, user_id: int | None
) -> str | None:
    """A queued export of the storage, unless one is queued already (then None)."""
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    statement = (
        dialect.insert(jobs)
        .values(
            id=uuid.uuid4().hex,
            org_id=org_id,
            kind=KIND,
            status=service.QUEUED,
            storage_id=storage_id,
            project_id=project_id,
            params="{}",
            created_by=user_id,
            created_at=datetime.now(UTC),
            done=0,
            failed=0,
            counts='{"written": 0, "unchanged": 0, "deleted": 0}',
        )
        .on_conflict_do_nothing()
        .returning(jobs.c.id)
    )
    found = conn.execute(statement).scalar_one_or_none()
    return None if found is None else str(found)


def queued_export(conn: Connection, storage_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(jobs).where(
            jobs.c.storage_id == storage_id, jobs.c.kind == KIND, jobs.c.status == service.QUEUED
        )
    ).first()
    return None if row is None else service.public(row)


def start_export(
    conn: Connection, org_id: int, storage_id: int, user_id: int | None = None
) -> tuple[dict[str, Any], bool]:
    """An export of the organization's target storage ``storage_id``, made in the caller's
    transaction (the caller queues it once that commits): the storage's queued export if it
    has one (flag False), else a new one (flag True; it runs after a running one ends)."""
    found = conn.execute(
        select(storages.c.role, storages.c.project_id).where(
            storages.c.id == storage_id, storages.c.org_id == org_id
        )
    ).first()
    if found is None:
        raise NotFound(f"no storage {storage_id}")
    if found.role != "target" or found.project_id is None:
        raise Invalid(f"storage {storage_id} is not a target storage of a project")
    job_id = _queue(conn, org_id, int(found.project_id), storage_id, user_id)
    if job_id is not None:
        return service.get(conn, org_id, job_id), True
    waiting = queued_export(conn, storage_id)
    if waiting is None:  # it started between the insert and this look: queue the next
        return start_export(conn, org_id, storage_id, user_id)
    return waiting, False
