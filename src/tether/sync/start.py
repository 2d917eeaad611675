"""Starting syncs: on request (``start_sync``, ``submit_sync``) and on a schedule
(``start_due_syncs``, a chore every worker runs).

Two syncs of one storage never run at once: the database holds at most one queued or running
``sync`` job per storage (the partial unique index ``uq_jobs_active_sync``), so a second
start, from any process, returns the job that is there. A schedule's due time is taken with
a compare-and-set on ``storages.next_sync_at``, so with many workers each due time starts
one sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from tether.catalog.store import begin_writing
from tether.db.tables import datasets, jobs, storages
from tether.errors import Invalid, NotFound
from tether.jobs import service
from tether.projects import targets
from tether.sync.runner import COUNTS, KIND

log = logging.getLogger(__name__)


def active_sync(conn: Connection, storage_id: int) -> dict[str, Any] | None:
    """The storage's queued or running sync job, if any."""
    row = conn.execute(
        select(jobs).where(
            jobs.c.storage_id == storage_id,
            jobs.c.kind == KIND,
            jobs.c.status.in_((service.QUEUED, service.RUNNING)),
        )
    ).first()
    return None if row is None else service.public(row)


def start_sync(
    conn: Connection,
    org_id: int,
    storage_id: int,
    user_id: int | None = None,
    *,
    parts: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """A new queued sync job of the organization's source storage ``storage_id``, created
    in the caller's transaction (the caller queues it once that commits); or the storage's
    queued or running sync, if it has one. Flag: created. For a target storage: its export
    (``projects.targets.start_export``). ``parts`` > 1: the sync splits
    into that many parts by first-level folder, for several workers (``sync.split``)."""
    begin_writing(conn)  # SQLite: hold the write lock from the look on (no lost race)
    found = conn.execute(
        select(storages.c.role, storages.c.dataset_id, datasets.c.deleted_at)
        .select_from(storages.outerjoin(datasets, datasets.c.id == storages.c.dataset_id))
        .where(storages.c.id == storage_id, storages.c.org_id == org_id)
    ).first()
    if found is None:
        raise NotFound(f"no storage {storage_id}")
    if found.role == "target":  # a target's sync is an export of its project's annotations
        return targets.start_export(conn, org_id, storage_id, user_id)
    if found.dataset_id is None or found.deleted_at is not None:
        raise Invalid(f"storage {storage_id} belongs to no dataset to sync into")
    running = active_sync(conn, storage_id)
    if running is not None:
        return running, False
    try:
        job, _created = service.create(
            conn,
            org_id,
            KIND,
            {"parts": parts} if parts and parts > 1 else {},
            found.dataset_id,
            created_by=user_id,
            storage_id=storage_id,
            counts=dict.fromkeys(COUNTS, 0),
        )
    except IntegrityError:  # another process started one since we looked
        running = active_sync(conn, storage_id)
        if running is None:
            raise
        return running, False
    conn.execute(
        update(storages).where(storages.c.id == storage_id).values(last_sync_job_id=job["id"])
    )
    return job, True


def submit_sync(
    engine: Engine,
    enqueue: Callable[[str], None],
    org_id: int,
    storage_id: int,
    user_id: int | None = None,
    *,
    parts: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """``start_sync`` in a transaction of its own, then queue the job (again, if it is
    queued already: a job queued twice runs once, its claim is a compare-and-set)."""
    with engine.begin() as conn:
        job, created = start_sync(conn, org_id, storage_id, user_id, parts=parts)
    if job["status"] == service.QUEUED:
        enqueue(job["id"])
    with engine.connect() as conn:
        return service.get(conn, org_id, job["id"]), created


def start_due_syncs(
    engine: Engine,
    enqueue: Callable[[str], None],
    now: datetime | None = None,
    parts: int | None = None,
) -> list[str]:
    """Start the sync of every storage whose ``next_sync_at`` has come (or that has a
    schedule and no next time yet), and move its next time on by ``sync_every_minutes``.
    Returns the ids of the jobs queued."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        due = conn.execute(
            select(
                storages.c.id,
                storages.c.org_id,
                storages.c.next_sync_at,
                storages.c.sync_every_minutes,
            ).where(
                storages.c.sync_every_minutes.is_not(None),
                storages.c.role == "source",
                storages.c.dataset_id.is_not(None),
                (storages.c.next_sync_at.is_(None)) | (storages.c.next_sync_at <= now),
            )
        ).all()
    queued: list[str] = []
    for storage_id, org_id, due_at, every in due:
        following = now + timedelta(minutes=every)
        job = _take_due_time(engine, storage_id, org_id, due_at, following, parts)
        if job is not None and job["status"] == service.QUEUED:
            enqueue(job["id"])
            queued.append(job["id"])
    return queued


def _take_due_time(
    engine: Engine,
    storage_id: int,
    org_id: int,
    due_at: datetime | None,
    following: datetime,
    parts: int | None,
) -> dict[str, Any] | None:
    """Move the storage's next time from ``due_at`` to ``following`` and start its sync, if
    no other worker moved it first."""
    try:
        with engine.begin() as conn:
            begin_writing(conn)
            same = (
                storages.c.next_sync_at.is_(None)
                if due_at is None
                else storages.c.next_sync_at == due_at
            )
            taken = conn.execute(
                update(storages)
                .where(storages.c.id == storage_id, same)
                .values(next_sync_at=following)
            ).rowcount
            if not taken:
                return None
            job, _created = start_sync(conn, org_id, storage_id, parts=parts)
            return job
    except (Invalid, NotFound):
        log.warning("scheduled sync of storage %s could not start", storage_id, exc_info=True)
        return None
