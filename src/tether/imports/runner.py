"""Running an import job: stream the uploaded file, validate, write chunk by chunk.

Each chunk commits its rows together with the job's progress, so a worker that dies loses
nothing: the job resumes after the last committed chunk.
"""

from __future__ import annotations

import logging
import threading
from contextlib import closing
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from tether.catalog.metadata_schema import Schema, load_schema
from tether.catalog.rows import NormalRow, RowError, normalize
from tether.db.engine import foreign_keys_unchecked, is_sqlite
from tether.db.wal import Checkpointer
from tether.imports import formats, pipeline, sniff
from tether.imports.writer import (
    DatasetGone,
    ImportTarget,
    allocate_ids,
    begin_writing,
    reserve_ids,
    write_chunk,
)
from tether.jobs import service as jobs
from tether.jobs.service import ItemError

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """The worker is stopping: the job stays running, to resume after its last chunk."""


def run_import(
    engine: Engine, job_id: str, chunk_rows: int = 5000, stop: threading.Event | None = None
) -> None:
    """Run an import job to its end, or, once ``stop`` is set, up to the end of the chunk being
    written (the job then resumes when a worker picks it up again)."""
    with engine.begin() as conn:
        job = jobs.claim(conn, job_id)
    if job is None:
        return
    params: dict[str, Any] = orjson.loads(job.params)
    upload = Path(params["_upload"])
    try:
        _run(engine, job, params, upload, chunk_rows, stop or threading.Event())
    except Interrupted:
        log.info("import job %s stopped after its last committed chunk; it resumes", job_id)
        return
    except (formats.FileError, DatasetGone) as exc:
        with engine.begin() as conn:
            jobs.finish(conn, job_id, message=str(exc), failed=True)
    except Exception as exc:
        log.exception("import job %s failed", job_id)
        with engine.begin() as conn:
            jobs.finish(conn, job_id, message=f"internal error: {type(exc).__name__}", failed=True)
    else:
        with engine.begin() as conn:
            jobs.finish(conn, job_id)
    upload.unlink(missing_ok=True)


def _run(
    engine: Engine,
    job: Any,
    params: dict[str, Any],
    upload: Path,
    chunk_rows: int,
    stop: threading.Event,
) -> None:
    container, flavor = formats.parse_format(params.get("format"))
    container = container or sniff.detect(upload, params.get("filename"))
    total = formats.count_items(upload, container, flavor)
    with engine.connect() as conn:
        schema = load_schema(conn, job.org_id)
    names = frozenset(f.name for f in schema.fields)
    source = pipeline.Source(upload, container, flavor, names, skip=job.done)
    media_type = params.get("media_type")
    with closing(pipeline.chunks(source, schema, media_type, chunk_rows, _validate)) as chunks:
        # The format recorded on the job: the container and how its items read (the forced
        # flavor, else the first item's that tells).
        first = next(chunks, None)
        flavor = flavor or (first.flavor if first else None)
        with engine.begin() as conn:
            jobs.set_source(conn, job.id, f"{container}/{flavor}" if flavor else container, total)
        if first is None:
            return
        target = ImportTarget(
            job.org_id, job.dataset_id, job.created_by, bool(params.get("upsert"))
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
            for chunk in chain([first], chunks):
                if stop.is_set():
                    raise Interrupted
                checkpointer.keep_up()
                if not _store(engine, conn, job.id, target, chunk):
                    return  # canceled
                checkpointer.committed()


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


def _store(
    engine: Engine, conn: Connection, job_id: str, target: ImportTarget, chunk: pipeline.Chunk
) -> bool:
    """Write one checked chunk with the job's progress, on ``conn``; False if the job was
    canceled. Ids come from a transaction of their own on PostgreSQL, so imports running side
    by side do not queue on ``id_blocks``; SQLite has one writer at a time anyway."""
    good, errors = chunk.good, chunk.errors
    sqlite = is_sqlite(conn)
    first_id = allocate_ids(engine, len(good)) if good and not sqlite else 0
    with conn.begin():
        begin_writing(conn)
        if good and sqlite:
            first_id = reserve_ids(conn, len(good))
        result = write_chunk(conn, target, good, first_id, datetime.now(UTC))
        errors.extend(result.errors)
        errors.sort(key=lambda e: e.index or 0)
        return jobs.record(conn, job_id, chunk.done, result.created, result.updated, errors)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:1000]
