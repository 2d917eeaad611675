"""The ``probe`` job: fill in the media attributes of a dataset's rows (``resolve.probe``).

It walks the dataset's image, video, audio and PDF rows in id order, a chunk at a time;
rows that have their attributes already are ``unchanged`` (all are probed again with
``force``). A chunk's assets are read by a few threads at once (each read is a few ranged
requests), then its attributes are written in one transaction with the job's progress and
the last row id (``details.cursor``), so a stopped or killed job resumes after its last
chunk. An asset that cannot be read is a per-item error (``item_key`` the row's global key,
else its URI); its row stays as it was.

Counts: ``probed`` (rows written), ``unchanged``, ``skipped`` (plain URLs while those are
off, rows whose data is not one URI), and ``failed``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, select

from tether.catalog import datasets
from tether.catalog.store import begin_writing
from tether.config import Settings
from tether.db.tables import data_rows, jobs, storages
from tether.jobs import service, worker
from tether.jobs.service import ItemError
from tether.jobs.worker import JobFailed, JobRun, Runner
from tether.resolve.headers import Unreadable
from tether.resolve.probe import (
    NEEDED,
    Located,
    Prober,
    Skipped,
    lacks_attributes,
    rows_after,
    write_attributes,
)

log = logging.getLogger(__name__)
KIND = "probe"
COUNTS = ("probed", "unchanged", "skipped")
CHUNK = 200
_READERS = 8
_DIRECT_LEASE = timedelta(minutes=5)


def probe_runner(settings: Settings, chunk_rows: int = CHUNK) -> Runner:
    """The runner of ``probe`` jobs, for ``runtime.py`` to register."""
    return partial(run, settings=settings, chunk_rows=chunk_rows)


def run_probe(
    engine: Engine,
    settings: Settings,
    job_id: str,
    chunk_rows: int = CHUNK,
    stop: threading.Event | None = None,
) -> None:
    """Claim and run one probe job here and now (scripts and tests)."""
    runners = {KIND: probe_runner(settings, chunk_rows)}
    worker.execute(engine, job_id, runners, f"direct:{job_id}", _DIRECT_LEASE, stop)


def start_probe(
    conn: Connection, org_id: int, dataset: str | int, user_id: int | None, force: bool = False
) -> tuple[dict[str, Any], bool]:
    """A new queued probe job of the dataset (by id or name), in the caller's transaction;
    or the dataset's queued one that asks the same (it has not started, so it sees every
    row). Flag: created."""
    dataset_id = int(datasets.get(conn, org_id, str(dataset))["id"])
    queued = conn.execute(
        select(jobs).where(
            jobs.c.org_id == org_id,
            jobs.c.dataset_id == dataset_id,
            jobs.c.kind == KIND,
            jobs.c.status == service.QUEUED,
        )
    ).all()
    for row in queued:
        if bool(orjson.loads(row.params or "{}").get("force")) == force:
            return service.public(row), False
    params = {"force": True} if force else {}
    return service.create(
        conn, org_id, KIND, params, dataset_id, created_by=user_id, counts=dict.fromkeys(COUNTS, 0)
    )


def submit_probe(
    engine: Engine,
    enqueue: Callable[[str], None],
    org_id: int,
    dataset: str | int,
    user_id: int | None = None,
    force: bool = False,
) -> tuple[dict[str, Any], bool]:
    """``start_probe`` in a transaction of its own, then queue the job."""
    with engine.begin() as conn:
        job, created = start_probe(conn, org_id, dataset, user_id, force)
    enqueue(job["id"])
    with engine.connect() as conn:
        return service.get(conn, org_id, job["id"]), created


def probe_after(
    settings: Settings, engine: Engine, enqueue: Callable[[str], None], job: JobRun
) -> None:
    """After a sync or an import: probe its dataset if the job created or changed rows and
    the dataset has a source storage to read them through (or plain URLs may be probed)."""
    if not settings.probe_after_writes or job.row.dataset_id is None:
        return
    if not (job.counts.get("created", 0) or job.counts.get("updated", 0)):
        return
    org_id, dataset_id = job.row.org_id, job.row.dataset_id
    with engine.begin() as conn:
        has_source = conn.execute(
            select(storages.c.id).where(
                storages.c.dataset_id == dataset_id, storages.c.role == "source"
            )
        ).first()
        if has_source is None and not settings.probe_http_urls:
            return
        probe, _created = start_probe(conn, org_id, dataset_id, job.row.created_by)
    enqueue(probe["id"])


def then_probe(
    runner: Runner, settings: Settings, engine: Engine, enqueue: Callable[[str], None]
) -> Runner:
    """``runner``, followed by ``probe_after`` once it returns (a probe that cannot start
    never fails the job that came first)."""

    def run_then_probe(job: JobRun) -> None:
        runner(job)
        try:
            probe_after(settings, engine, enqueue, job)
        except Exception:
            log.exception("job %s: starting the probe of its dataset failed", job.id)

    return run_then_probe


def run(job: JobRun, settings: Settings, chunk_rows: int = CHUNK) -> None:
    job.cancel_message = _canceled_message
    dataset_id = job.row.dataset_id
    if dataset_id is None:
        raise JobFailed("the job names no dataset")
    force = bool(job.params.get("force"))
    if job.row.total is None:
        with job.engine.connect() as conn:
            total = conn.execute(
                select(func.count()).where(
                    data_rows.c.dataset_id == dataset_id, data_rows.c.media_type.in_(tuple(NEEDED))
                )
            ).scalar_one()
        job.describe(int(total))
    cursor = int(job.details.get("cursor") or 0)
    with (
        Prober(settings, job.row.org_id) as prober,
        ThreadPoolExecutor(_READERS, thread_name_prefix="probe-read") as pool,
    ):
        while True:
            job.check_stop()
            with job.engine.connect() as conn:
                rows = list(rows_after(conn, dataset_id, cursor, max(1, chunk_rows)))
                if not rows:
                    return
                work, counts, errors = _sort_out(conn, prober, rows, force)
            found = list(pool.map(lambda item: _probe(prober, *item), work))
            cursor = rows[-1].id
            if not _write(job, rows, found, counts, errors, cursor):
                return


def _sort_out(
    conn: Connection, prober: Prober, rows: list[Any], force: bool
) -> tuple[list[tuple[Any, Located | str]], dict[str, int], list[ItemError]]:
    """The rows of a chunk to probe (with where each is read), and the tallies of the rest."""
    counts = dict.fromkeys(COUNTS, 0)
    work: list[tuple[Any, Located | str]] = []
    errors: list[ItemError] = []
    candidates = prober.candidates(conn, rows)
    for row in rows:
        had = orjson.loads(row.media_attributes) if row.media_attributes else {}
        if not force and not lacks_attributes(row.media_type, had):
            counts["unchanged"] += 1
            continue
        try:
            work.append((row, prober.locate(row, candidates)))
        except Skipped:
            counts["skipped"] += 1
        except Unreadable as exc:
            errors.append(_error(row, exc))
    return work, counts, errors


def _probe(prober: Prober, row: Any, where: Located | str) -> tuple[Any, Any]:
    """(row, its new attributes or the ``Unreadable`` that says why there are none)."""
    try:
        return row, prober.attributes(where, row.media_attributes)
    except Unreadable as exc:
        return row, exc
    except Exception as exc:  # a parser's surprise is this item's error, not the job's
        log.warning("probing row %s failed", row.id, exc_info=True)
        return row, Unreadable("unreadable_asset", f"{type(exc).__name__}: {exc}")


def _write(
    job: JobRun,
    rows: list[Any],
    found: list[tuple[Any, Any]],
    counts: dict[str, int],
    errors: list[ItemError],
    cursor: int,
) -> bool:
    """One chunk's attributes, with the job's progress and cursor; False if canceled."""
    with job.engine.begin() as conn:
        begin_writing(conn)
        for row, result in found:
            if isinstance(result, Unreadable):
                errors.append(_error(row, result))
            elif write_attributes(conn, row, result):
                counts["probed"] += 1
            else:
                counts["skipped"] += 1  # changed (or removed) since it was read
        job.keep_cursor(conn, cursor)
        return job.record(conn, job.done + len(rows), counts, errors)


def _error(row: Any, exc: Unreadable) -> ItemError:
    uri = orjson.loads(row.row_data)
    key = row.global_key or (uri if isinstance(uri, str) else str(row.id))
    details = {"data_row_id": row.id}
    return ItemError(None, exc.code, exc.message, row.global_key, None, key, details)


def _canceled_message(job: JobRun) -> str:
    return (
        f"canceled after {job.done} rows: the attributes of the "
        f"{job.counts.get('probed', 0)} rows probed before the cancel stay"
    )
