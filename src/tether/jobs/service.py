"""Job state machine, kept in tether's own tables:

    queued → running → completed | completed_with_errors | failed | canceled

Any service can run jobs of its own kind: it registers a runner for the kind (``runtime.py``)
and a worker runs it under a lease (``jobs.worker``). This module is what users see of a job:
creating one, reading it, its per-item errors, cancelling it.

Every job has typed ``done``/``total``/``failed`` tallies; the kind's other tallies are the
keys of ``counts`` (import: ``created``, ``updated``; delete_dataset: ``deleted``), and the facts
it records about its run are in ``details`` (import: ``format``).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tether.db.tables import job_errors, jobs
from tether.errors import Conflict, Invalid, NotFound
from tether.timeutil import iso

QUEUED, RUNNING, COMPLETED = "queued", "running", "completed"
COMPLETED_WITH_ERRORS, FAILED, CANCELED = "completed_with_errors", "failed", "canceled"
FINISHED = (COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELED)
STATUSES = (QUEUED, RUNNING, *FINISHED)
MAX_ERRORS_PAGE = 1000
MAX_JOBS_PAGE = 500


class IdempotencyKeyReused(Invalid):
    """An ``Idempotency-Key`` sent again with a request other than the first one's."""

    code = "idempotency_key_reused"


@dataclass
class ItemError:
    """One item's failure. ``index`` is its position in the job's input (if it has one),
    ``item_key`` what names it there (an object key; the index when not given)."""

    index: int | None
    code: str
    message: str
    global_key: str | None = None
    external_id: str | None = None
    item_key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_row(self, job_id: str) -> dict[str, Any]:
        details = dict(self.details)
        for name, value in (("global_key", self.global_key), ("external_id", self.external_id)):
            if value is not None:
                details[name] = _storable(value)
        key = self.item_key if self.item_key is not None else _index_key(self.index)
        return {
            "job_id": job_id,
            "item_index": self.index,
            "item_key": _storable(key),
            "code": self.code,
            "message": _storable(self.message),
            "details": orjson.dumps(details).decode() if details else None,
        }


def _index_key(index: int | None) -> str | None:
    return None if index is None else str(index)


def _storable(text: str | None) -> str | None:
    """The text of a bad item as PostgreSQL can store it (it refuses NUL characters)."""
    return None if text is None else text.replace("\x00", "\\x00")


AFTER_COMMIT = "tether.enqueue_after_commit"


def enqueue_after_commit(conn: Connection, job_ids: list[str]) -> None:
    """Jobs a service created in ``conn``'s transaction, for the caller to queue once it
    commits (the API's connection does: ``api.deps.connection``)."""
    if job_ids:
        conn.info.setdefault(AFTER_COMMIT, []).extend(job_ids)


def take_after_commit(conn: Connection) -> list[str]:
    """The job ids ``enqueue_after_commit`` noted, forgotten here (call it in every case:
    the info outlives a checkout of the pooled connection)."""
    found: list[str] = conn.info.pop(AFTER_COMMIT, [])
    return found


def fingerprint(*parts: Any) -> str:
    """A digest of what a request asked for (body digest, target, options)."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def create(
    conn: Connection,
    org_id: int,
    kind: str,
    params: dict[str, Any],
    dataset_id: int | None = None,
    idempotency_key: str | None = None,
    created_by: int | None = None,
    *,
    request_fingerprint: str | None = None,
    storage_id: int | None = None,
    project_id: int | None = None,
    total: int | None = None,
    counts: dict[str, int] | None = None,
) -> tuple[dict[str, Any], bool]:
    """A new queued job, or (for a repeated idempotency key) the first one; flag = created.
    A key reused for another request (another fingerprint) is ``IdempotencyKeyReused``."""
    if idempotency_key:
        existing = find_by_idempotency_key(conn, org_id, idempotency_key, request_fingerprint)
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
                    storage_id=storage_id,
                    project_id=project_id,
                    params=orjson.dumps(params).decode(),
                    fingerprint=request_fingerprint,
                    idempotency_key=idempotency_key,
                    created_by=created_by,
                    created_at=datetime.now(UTC),
                    total=total,
                    done=0,
                    failed=0,
                    counts=orjson.dumps(counts or {}).decode(),
                )
            )
    except IntegrityError:
        existing = find_by_idempotency_key(conn, org_id, idempotency_key or "", request_fingerprint)
        if existing is None:
            raise
        return existing, False
    return get(conn, org_id, job_id), True


def find_by_idempotency_key(
    conn: Connection, org_id: int, key: str, request_fingerprint: str | None = None
) -> dict[str, Any] | None:
    """The job made for ``key``; ``IdempotencyKeyReused`` if it was made for another request."""
    row = conn.execute(
        select(jobs).where(jobs.c.org_id == org_id, jobs.c.idempotency_key == key)
    ).first()
    if row is None:
        return None
    if request_fingerprint and row.fingerprint and row.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            f"the Idempotency-Key {key!r} was used for another request (another body, dataset "
            f"or options: job {row.id}); send a new key for a new request",
            {"job_id": row.id},
        )
    return public(row)


def public(row: Any) -> dict[str, Any]:
    """The job as the API shows it (``counts`` holds ``failed`` too, as it always did)."""
    params = orjson.loads(row.params or "{}")
    details = orjson.loads(row.details) if row.details else {}
    counts = orjson.loads(row.counts) if row.counts else {}
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "dataset_id": row.dataset_id,
        "storage_id": row.storage_id,
        "project_id": row.project_id,
        "format": details.get("format"),
        "options": {k: v for k, v in params.items() if not k.startswith("_")},
        "progress": {"done": row.done, "total": row.total},
        "counts": {**counts, "failed": row.failed},
        "details": details,
        "message": row.message,
        "cancel_requested": row.cancel_requested_at is not None and row.status == RUNNING,
        "claimed_by": row.claimed_by,
        "lease_until": iso(row.lease_until),
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }


def get(conn: Connection, org_id: int, job_id: str) -> dict[str, Any]:
    row = conn.execute(select(jobs).where(jobs.c.org_id == org_id, jobs.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return public(row)


@dataclass
class JobFilter:
    kind: str | None = None
    status: str | None = None
    dataset_id: int | None = None


def page(
    conn: Connection,
    org_id: int,
    flt: JobFilter | None = None,
    after: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """Jobs newest first, a page at a time: ``after`` is the last job id of the page before;
    the second value is the cursor of the next page (None on the last)."""
    flt = flt or JobFilter()
    if flt.status is not None and flt.status not in STATUSES:
        raise Invalid(f"unknown status {flt.status!r}; expected one of " + ", ".join(STATUSES))
    limit = max(1, min(limit, MAX_JOBS_PAGE))
    query = select(jobs).where(jobs.c.org_id == org_id)
    for column, value in (
        (jobs.c.kind, flt.kind),
        (jobs.c.status, flt.status),
        (jobs.c.dataset_id, flt.dataset_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        mark = conn.execute(
            select(jobs.c.created_at).where(jobs.c.org_id == org_id, jobs.c.id == after)
        ).first()
        if mark is None:
            raise Invalid(f"after={after!r} names no job of yours")
        query = query.where(
            or_(
                jobs.c.created_at < mark.created_at,
                and_(jobs.c.created_at == mark.created_at, jobs.c.id < after),
            )
        )
    rows = conn.execute(
        query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (rows[-1].id if more else None)


def list_recent(conn: Connection, org_id: int, limit: int = 50) -> list[dict[str, Any]]:
    return page(conn, org_id, None, None, limit)[0]


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
    return [_public_error(r) for r in rows], (rows[-1].id if more else None)


def _public_error(row: Any) -> dict[str, Any]:
    details = orjson.loads(row.details) if row.details else {}
    return {
        "index": row.item_index,
        "item_key": row.item_key,
        "global_key": details.pop("global_key", None),
        "external_id": details.pop("external_id", None),
        "code": row.code,
        "message": row.message,
        "details": details,
    }


def cancel(conn: Connection, org_id: int, job_id: str) -> dict[str, Any]:
    """A queued job is canceled at once. A running one is asked to stop: its runner stops
    after the item (or chunk) it is writing and then marks it canceled, so its counts are
    exactly what was done; until then the job shows ``cancel_requested``."""
    job = get(conn, org_id, job_id)
    if job["status"] in FINISHED:
        raise Conflict(f"job {job_id} has finished already ({job['status']})")
    params = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id)).scalar_one()
    if orjson.loads(params or "{}").get("_cancelable") is False:
        raise Conflict(f"a {job['kind']} job cannot be canceled")
    now = datetime.now(UTC)
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == QUEUED)
        .values(
            status=CANCELED,
            finished_at=now,
            cancel_requested_at=now,
            message="canceled before it started: nothing was done",
        )
    )
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == RUNNING)
        .values(cancel_requested_at=now)
    )
    return get(conn, org_id, job_id)
