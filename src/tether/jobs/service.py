"""Job state machine, kept in tether's own tables:

    queued → running → completed | completed_with_errors | failed | canceled

A running job beats its heartbeat after every chunk; a job whose heartbeat stopped is a dead
worker's and is queued again (imports resume after the last committed chunk).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from tether.db.tables import job_errors, jobs
from tether.errors import Conflict, NotFound
from tether.timeutil import as_utc, iso

QUEUED, RUNNING, COMPLETED = "queued", "running", "completed"
COMPLETED_WITH_ERRORS, FAILED, CANCELED = "completed_with_errors", "failed", "canceled"
FINISHED = (COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELED)
STALE_AFTER = timedelta(minutes=2)
MAX_ERRORS_PAGE = 1000


@dataclass
class ItemError:
    index: int | None
    code: str
    message: str
    global_key: str | None = None
    external_id: str | None = None

    def to_row(self, job_id: str) -> dict[str, Any]:
        return {
            "job_id": job_id,
            "item_index": self.index,
            "global_key": _storable(self.global_key),
            "external_id": _storable(self.external_id),
            "code": self.code,
            "message": _storable(self.message),
        }


def _storable(text: str | None) -> str | None:
    """The text of a bad item as PostgreSQL can store it (it refuses NUL characters)."""
    return None if text is None else text.replace("\x00", "\\x00")


def create(
    conn: Connection,
    org_id: int,
    kind: str,
    params: dict[str, Any],
    dataset_id: int | None = None,
    idempotency_key: str | None = None,
    created_by: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """A new queued job, or (for a repeated idempotency key) the first one; flag = created."""
    if idempotency_key:
        existing = find_by_idempotency_key(conn, org_id, idempotency_key)
        if existing:
            return existing, False
    job_id = uuid.uuid4().hex
    try:
        with conn.begin_nested():
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    org_id=org_id,
                    kind=kind,
                    status=QUEUED,
                    dataset_id=dataset_id,
                    params=orjson.dumps(params).decode(),
                    idempotency_key=idempotency_key,
                    created_by=created_by,
                    created_at=datetime.now(UTC),
                    done=0,
                    created=0,
                    updated=0,
                    failed=0,
                )
            )
    except IntegrityError:
        existing = find_by_idempotency_key(conn, org_id, idempotency_key or "")
        if existing is None:
            raise
        return existing, False
    return get(conn, org_id, job_id), True


def find_by_idempotency_key(conn: Connection, org_id: int, key: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(jobs).where(jobs.c.org_id == org_id, jobs.c.idempotency_key == key)
    ).first()
    return _public(row) if row else None


def _public(row: Any) -> dict[str, Any]:
    params = orjson.loads(row.params or "{}")
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "dataset_id": row.dataset_id,
        "format": row.detected_format,
        "options": {k: v for k, v in params.items() if not k.startswith("_")},
        "progress": {"done": row.done, "total": row.total},
        "counts": {"created": row.created, "updated": row.updated, "failed": row.failed},
        "message": row.message,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }


def get(conn: Connection, org_id: int, job_id: str) -> dict[str, Any]:
    row = conn.execute(select(jobs).where(jobs.c.org_id == org_id, jobs.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return _public(row)


def list_recent(conn: Connection, org_id: int, limit: int = 50) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(jobs)
        .where(jobs.c.org_id == org_id)
        .order_by(jobs.c.created_at.desc())
        .limit(min(limit, 500))
    ).all()
    return [_public(r) for r in rows]


def errors(
    conn: Connection, org_id: int, job_id: str, after: int | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], int | None]:
    get(conn, org_id, job_id)
    limit = max(1, min(limit, MAX_ERRORS_PAGE))
    query = select(job_errors).where(job_errors.c.job_id == job_id)
    if after is not None:
        query = query.where(job_errors.c.id > after)
    rows = conn.execute(query.order_by(job_errors.c.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    out = [
        {
            "index": r.item_index,
            "global_key": r.global_key,
            "external_id": r.external_id,
            "code": r.code,
            "message": r.message,
        }
        for r in rows
    ]
    return out, (rows[-1].id if more else None)


def cancel(conn: Connection, org_id: int, job_id: str) -> dict[str, Any]:
    job = get(conn, org_id, job_id)
    if job["status"] in FINISHED:
        raise Conflict(f"job {job_id} has finished already ({job['status']})")
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(status=CANCELED, finished_at=datetime.now(UTC))
    )
    return get(conn, org_id, job_id)


# --- used by workers -------------------------------------------------------------------


def load(conn: Connection, job_id: str) -> Any:
    return conn.execute(select(jobs).where(jobs.c.id == job_id)).first()


def claim(conn: Connection, job_id: str) -> Any:
    """Mark a queued (or abandoned running) job as running; None if it is not to be run."""
    now = datetime.now(UTC)
    done = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status.in_((QUEUED, RUNNING)))
        .values(status=RUNNING, started_at=now, heartbeat_at=now)
    )
    return load(conn, job_id) if done.rowcount else None


def set_source(conn: Connection, job_id: str, detected_format: str, total: int | None) -> None:
    conn.execute(
        update(jobs).where(jobs.c.id == job_id).values(detected_format=detected_format, total=total)
    )


def record(
    conn: Connection,
    job_id: str,
    done: int,
    created: int,
    updated: int,
    item_errors: list[ItemError],
) -> bool:
    """Add one chunk's outcome; False if the job was canceled meanwhile."""
    if item_errors:
        conn.execute(insert(job_errors), [e.to_row(job_id) for e in item_errors])
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == RUNNING)
        .values(
            done=done,
            created=jobs.c.created + created,
            updated=jobs.c.updated + updated,
            failed=jobs.c.failed + len(item_errors),
            heartbeat_at=datetime.now(UTC),
        )
    )
    return bool(result.rowcount)


def finish(conn: Connection, job_id: str, message: str | None = None, failed: bool = False) -> None:
    row = load(conn, job_id)
    if row is None or row.status != RUNNING:
        return
    status = FAILED if failed else COMPLETED_WITH_ERRORS if row.failed else COMPLETED
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status=status,
            message=message,
            finished_at=datetime.now(UTC),
            total=row.total if row.total is not None else row.done,
        )
    )


def abandoned(conn: Connection, stale_after: timedelta = STALE_AFTER) -> list[str]:
    """Running jobs whose worker is gone (no heartbeat for ``stale_after``): run them again."""
    cutoff = datetime.now(UTC) - stale_after
    rows = conn.execute(
        select(jobs.c.id, jobs.c.heartbeat_at).where(jobs.c.status == RUNNING)
    ).all()
    return [r.id for r in rows if r.heartbeat_at is None or as_utc(r.heartbeat_at) < cutoff]
