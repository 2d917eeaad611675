"""A sync split by prefix across workers: the ``sync`` job (the parent) cuts the store into
key ranges at its first-level folders, makes one ``sync_part`` job per range and queues
them; any worker runs a part (the parent's own worker too, taking parts nobody has taken
yet), and the parent ends when every part has, with their counts and errors summed.

A part is a sync of the keys in ``(after, until]`` (``None`` open): its listing starts after
``after`` and stops past ``until``, its link reads are bounded the same way, so parts running
side by side touch disjoint objects, links and rows. Each part resumes on its own like any
sync (its cursor is in its own job). The parts' ranges are recorded on the parent (in the
transaction that creates them), so a parent resumed after its worker died finds them.

The folders are found with one short listing each (the first key after the last folder):
cheap for stores with a few hundred first-level folders, and a store whose keys lie in one
folder is not split. Splitting is for PostgreSQL deployments with several workers (SQLite has
one writer at a time anyway).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from itertools import pairwise
from typing import Any

import orjson
from sqlalchemy import Connection, insert, literal, select, update

from tether.config import Settings
from tether.db.tables import job_errors, jobs
from tether.errors import Conflict
from tether.jobs import service, worker
from tether.jobs.worker import JobFailed, JobRun, Runner
from tether.storages.base import Storage
from tether.sync.connections import get_record, open_backend

PART_KIND = "sync_part"
MAX_PROBES = 512  # listings spent looking for folders
_PAST = "\U0010ffff" * 4  # after every key in a folder (keys that long past it are rare)
_HELP_AFTER_SECONDS = 1.0  # how long queued parts wait for other workers before the parent
_POLL_SECONDS = 0.3


def folders(storage: Storage, prefix: str, probes: int = MAX_PROBES) -> list[str]:
    """The first-level folders under ``prefix`` (``prefix + "name/"``), in key order, found
    by listing one page after the previous folder each time."""
    found: list[str] = []
    after: str | None = None
    for _ in range(probes):
        first = None
        for page in storage.list(prefix, start_after=after):
            first = page[0] if page else None
            break
        if first is None:
            break
        rest = first.key[len(prefix) :]
        slash = rest.find("/")
        if slash < 0:
            after = first.key  # an object directly under the prefix: look past it
            continue
        folder = prefix + rest[: slash + 1]
        found.append(folder)
        after = folder + _PAST
    return found


def ranges(boundaries: list[str], parts: int) -> list[tuple[str | None, str | None]]:
    """``parts`` (or fewer) key ranges ``(after, until]`` that together take every key,
    cut at some of ``boundaries`` (each folder's name: keys in it are after it)."""
    if len(boundaries) < 2 or parts < 2:
        return [(None, None)]
    step = len(boundaries) / parts
    last = len(boundaries) - 1
    cuts = sorted({boundaries[min(int(i * step), last)] for i in range(1, parts)})
    edges: list[str | None] = [None, *cuts, None]
    return list(pairwise(edges))


def run_parent(
    job: JobRun, settings: Settings, runner: Runner, enqueue: Callable[[str], None] | None
) -> None:
    """Split the sync into parts (once), queue them, run or wait for them, then sum them
    up. ``runner`` runs a part here; ``enqueue`` hands parts to the queue (None: this
    worker runs every part itself)."""
    parts: list[str] | None = job.details.get("parts")
    if parts is None:
        parts = _make_parts(job, settings)
    elif job.details.get("summed"):
        _raise_if_broken(_states(job, parts))
        return  # cut off between summing up and finishing: only the finish is left
    helps_at = time.monotonic()
    if enqueue is not None:
        for part_id in parts:  # again, when resumed: a part queued twice runs once
            enqueue(part_id)
        helps_at += _HELP_AFTER_SECONDS  # idle workers take parts first
    runners = {PART_KIND: runner}
    while True:
        job.check_stop()
        states = _states(job, parts)
        waiting = [s.id for s in states if s.status == service.QUEUED]
        if waiting and time.monotonic() >= helps_at:  # nobody took it yet: run it here
            worker.execute(job.engine, waiting[0], runners, job.worker_id, job.lease, job.stop)
            continue
        if all(s.status in service.FINISHED for s in states):
            break
        with job.engine.begin() as conn:
            if not job.record(conn, sum(s.done for s in states)):
                _cancel_parts(job, parts)
                return
        time.sleep(_POLL_SECONDS)
    _sum_up(job, parts)


def _make_parts(job: JobRun, settings: Settings) -> list[str]:
    """Create the part jobs (with the parent's record of them, in one transaction)."""
    with job.engine.connect() as conn:
        record = get_record(conn, settings, job.row.org_id, job.row.storage_id)
    storage = open_backend(settings, record)
    try:
        cut = ranges(folders(storage, record.prefix), int(job.params.get("parts") or 1))
    finally:
        close = getattr(storage, "close", None)
        if close is not None:
            close()
    ids: list[str] = []
    with job.engine.begin() as conn:
        for after, until in cut:
            part, _new = service.create(
                conn,
                job.row.org_id,
                PART_KIND,
                {"parent": job.id, "after": after, "until": until},
                job.row.dataset_id,
                created_by=job.row.created_by,
                storage_id=job.row.storage_id,
                counts={},
            )
            ids.append(part["id"])
        _set_details(conn, job, parts=ids)
    return ids


def _states(job: JobRun, parts: list[str]) -> list[Any]:
    with job.engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    jobs.c.id,
                    jobs.c.status,
                    jobs.c.done,
                    jobs.c.failed,
                    jobs.c.counts,
                    jobs.c.message,
                ).where(jobs.c.id.in_(parts))
            ).all()
        )


def _cancel_parts(job: JobRun, parts: list[str]) -> None:
    with job.engine.begin() as conn:
        for part in parts:
            with suppress(Conflict):  # finished already
                service.cancel(conn, job.row.org_id, part)


def _sum_up(job: JobRun, parts: list[str]) -> None:
    states = _states(job, parts)
    totals: dict[str, int] = {}
    for state in states:
        for name, value in orjson.loads(state.counts or "{}").items():
            totals[name] = totals.get(name, 0) + int(value)
    with job.engine.begin() as conn:
        conn.execute(
            insert(job_errors).from_select(
                ["job_id", "item_index", "item_key", "code", "message", "details"],
                select(
                    literal(job.id),
                    job_errors.c.item_index,
                    job_errors.c.item_key,
                    job_errors.c.code,
                    job_errors.c.message,
                    job_errors.c.details,
                )
                .where(job_errors.c.job_id.in_(parts))
                .order_by(job_errors.c.id),
            )
        )
        job.failed = sum(s.failed for s in states)
        _set_details(conn, job, summed=True)
        job.record(conn, sum(s.done for s in states), totals)
    _raise_if_broken(states)


def _raise_if_broken(states: list[Any]) -> None:
    broken = [s for s in states if s.status in (service.FAILED, service.CANCELED)]
    if broken:
        first = broken[0]
        raise JobFailed(f"part {first.id} of the sync {first.status}: {first.message}")


def _set_details(conn: Connection, job: JobRun, **facts: Any) -> None:
    """Record facts on the job in ``conn``'s transaction (LeaseLost if it is not ours)."""
    job.details = {**job.details, **facts}
    done = conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id, jobs.c.claimed_by == job.worker_id)
        .values(details=orjson.dumps(job.details).decode())
    ).rowcount
    if not done:
        raise worker.LeaseLost
