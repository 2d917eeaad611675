"""Running an import job: stream the uploaded file, validate, write chunk by chunk. The job's
``counts`` are ``created`` and ``updated`` (and ``failed``); its ``details`` hold ``format``.

Each chunk commits its rows together with the job's progress, so a worker that dies loses
nothing: the job resumes after the last committed chunk.
"""

from __future__ import annotations

import logging
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from tether.catalog import store
from tether.catalog.metadata_schema import Schema, load_schema
from tether.catalog.rows import NormalRow, RowError, normalize
from tether.catalog.store import DatasetGone, Target, allocate_ids, begin_writing, reserve_ids
from tether.db.engine import foreign_keys_unchecked, is_sqlite
from tether.db.wal import Checkpointer
from tether.imports import formats, pipeline, sniff
from tether.imports.collector import collector_paused
from tether.imports.submit import KIND
from tether.jobs import worker
from tether.jobs.service import ItemError
from tether.jobs.worker import JobFailed, JobRun, LeaseLost, Runner, Stopping

log = logging.getLogger(__name__)
_DIRECT_LEASE = timedelta(minutes=5)


def import_runner(chunk_rows: int = 5000) -> Runner:
    """The runner of ``import`` jobs, for ``runtime.py`` to register."""
    return partial(run, chunk_rows=chunk_rows)


def run_import(
    engine: Engine, job_id: str, chunk_rows: int = 5000, stop: threading.Event | None = None
) -> None:
    """Claim and run one import job here and now (scripts and tests; workers go through the
    queue)."""
    runners = {KIND: import_runner(chunk_rows)}
    worker.execute(engine, job_id, runners, f"direct:{job_id}", _DIRECT_LEASE, stop)


def run(job: JobRun, chunk_rows: int = 5000) -> None:
    """Run an import job to its end; or, once the worker stops, up to the end of the chunk
    being written (the job then resumes on a worker); or, once canceled, likewise, with the
    job canceled and what was written counted."""
    job.cancel_message = _canceled_message
    upload = Path(job.params["_upload"])
    try:
        if not upload.exists():
            raise JobFailed("the uploaded file is gone (removed before the job ran)")
        _run(job, upload, chunk_rows)
    except (Stopping, LeaseLost):
        raise  # the upload stays for the job's next run
    except (formats.FileError, DatasetGone) as exc:
        upload.unlink(missing_ok=True)
        raise JobFailed(str(exc)) from exc
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    upload.unlink(missing_ok=True)


def _canceled_message(job: JobRun) -> str:
    created, updated = job.counts.get("created", 0), job.counts.get("updated", 0)
    return (
        f"canceled after {job.done} items: the {created} rows created and {updated} updated "
        f"before the cancel stay in dataset {job.row.dataset_id}; delete them with "
        "POST /api/v1/data-rows/delete (by id or global key) or by deleting the dataset"
    )


def _run(job: JobRun, upload: Path, chunk_rows: int) -> None:
    params, engine = job.params, job.engine
    container, flavor = formats.parse_format(params.get("format"))
    container = container or sniff.detect(upload, params.get("filename"))
    with engine.connect() as conn:
        schema = load_schema(conn, job.row.org_id)
    names = frozenset(f.name for f in schema.fields)
    source = pipeline.Source(upload, container, flavor, names, skip=job.done)
    media_type = params.get("media_type")
    with closing(pipeline.chunks(source, schema, media_type, chunk_rows, _validate)) as chunks:
        # Counted while the reader process (of a large upload) starts.
        total = formats.count_items(upload, container, flavor)
        # The format recorded on the job: the container and how its items read (the forced
        # flavor, else the first item's that tells).
        with collector_paused():
            first = next(chunks, None)
        flavor = flavor or (first.flavor if first else None)
        job.describe(total, format=f"{container}/{flavor}" if flavor else container)
        if first is None:
            return
        target = Target(
            job.row.org_id, job.row.dataset_id, job.row.created_by, bool(params.get("upsert"))
        )
        # One connection writes every chunk. On SQLite it checks no foreign keys (a chunk's
        # dataset is checked under the write lock, and its data rows are inserted before
        # their metadata) and leaves checkpoints to a thread.
        checkpointer = Checkpointer(engine)
        with (
            engine.connect() as conn,
            foreign_keys_unchecked(conn),
            checkpointer.writer(conn),
        ):
            pending: list[pipeline.Chunk] = [first]
            del first
            while True:
                # A chunk is made, written and dropped with the collector paused (its objects
                # live only that long, so no collection walks them), which runs between chunks.
                with collector_paused():
                    chunk = pending.pop() if pending else next(chunks, None)
                    if chunk is None:
                        return
                    job.check_stop()
                    checkpointer.keep_up()
                    if not _store(conn, job, target, chunk):
                        return  # canceled, with this chunk counted
                    checkpointer.committed()
                    del chunk


def _validate(
    chunk: list[formats.Item], schema: Schema, media_type: str | None
) -> tuple[list[tuple[int, NormalRow]], list[ItemError]]:
    good: list[tuple[int, NormalRow]] = []
    errors: list[ItemError] = []
    for item in chunk:
        if item.error is not None or item.value is None:
            err = item.error or RowError("malformed_item", "unreadable item")
            errors.append(ItemError(item.index, err.code, err.message))
            continue
        try:
            good.append((item.index, normalize(item.value, schema, media_type)))
        except RowError as exc:
            errors.append(
                ItemError(
                    item.index,
                    exc.code,
                    exc.message,
                    _text(item.value.get("global_key")),
                    _text(item.value.get("external_id")),
                )
            )
    return good, errors


def _store(conn: Connection, job: JobRun, target: Target, chunk: pipeline.Chunk) -> bool:
    """Write one checked chunk with the job's progress, on ``conn``; False if the job was
    canceled (this chunk is then the last, and counted). Ids come from a transaction of their
    own on PostgreSQL, so imports running side by side do not queue on ``id_blocks``; SQLite
    has one writer at a time anyway."""
    good, errors = chunk.good, chunk.errors
    sqlite = is_sqlite(conn)
    first_id = allocate_ids(job.engine, len(good)) if good and not sqlite else 0
    with conn.begin():
        begin_writing(conn)
        if good and sqlite:
            first_id = reserve_ids(conn, len(good))
        result = store.write_rows(conn, target, good, first_id, datetime.now(UTC))
        errors.extend(result.errors)
        errors.sort(key=lambda e: e.index or 0)
        counts = {"created": result.created, "updated": result.updated}
        return job.record(conn, chunk.done, counts, errors)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:1000]
