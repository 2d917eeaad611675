"""Running an ``export`` job: a project's annotations out to one target storage, as Label
Studio writes them (``shared/LABELING.md``): one object per annotation at
``<prefix>/<annotation id>`` holding ``shapes.target_object`` (skips too).

What was written is in ``export_links`` (storage, annotation) -> version, and how far in
``storages.export_seq``: every annotation of the project saved with a change number
(``annotations.seq``, handed out by ``labels`` in commit order) at or below it is in the
storage. So an export reads only the annotations saved above it, up to the project's
number when the job first started (later saves go next time), in that order a batch at a
time (one query: the rows with their tasks, data rows, users and links), writes those whose
version differs from their link by a thread pool while the next batch is read, and commits
their links with the job's counts and cursor once the batch's writes are done; once all
are, ``export_seq`` moves up to that number. So a job killed at any moment resumes after
its last committed batch (a new job reads again from the old ``export_seq``, and its links
tell it what is there): nothing is missing, and at most the batches in flight (two) are
written again. With
``can_delete_objects`` it then deletes the objects of links whose annotation is gone (a
look at every link: deletes take no change number, and rows deleted with their data row or
task never pass through ``labels``).

Counts: ``written``, ``unchanged`` (the annotations at or below ``export_seq`` when it
started, plus those read whose link had their version), ``deleted`` (objects), ``failed``
(an annotation whose object could not be written or deleted: a per-item error naming it;
its link stays as it was, and ``export_seq`` stays below it, so the next export tries
again). ``progress.done``: annotations compared (those below ``export_seq`` at once), then
stale links handled.

Two exports of one storage never write at once: a job waits while an older export of the
storage runs (with a live lease), and a job resumed after a newer one has started ends at
once (the newer one writes everything it would). A job stops when its storage is deleted or
its config changed (another place holds none of what it wrote: ``export_seq`` went to 0).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Integer,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    delete,
    func,
    literal,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from tether.config import Settings
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import data_rows, export_links, jobs, storages, tasks, users
from tether.db.tables import projects as project_rows
from tether.errors import TetherError
from tether.jobs import worker
from tether.jobs.service import RUNNING, ItemError
from tether.jobs.worker import JobFailed, JobRun, Runner
from tether.projects import projects, shapes
from tether.projects.label_config import LabelConfig
from tether.projects.targets import KIND
from tether.storages.base import Storage
from tether.sync.connections import StorageRecord, get_record, open_backend

BATCH = 250  # annotations a batch writes (and a killed export may write again, twice)
WRITERS = 16  # objects written at once (obstore's clients are thread-safe)
_FIRST_BATCH = 32
_PER_TASK = 8  # objects one writer task makes and writes
WAIT_POLL = 0.25  # seconds between looks at an older export this one waits for
_DIRECT_LEASE = timedelta(minutes=5)
a, links, t = annotation_rows, export_links, tasks


def export_runner(settings: Settings, batch: int = BATCH, writers: int = WRITERS) -> Runner:
    """The runner of ``export`` jobs, for ``runtime.py`` to register."""
    return partial(run, settings=settings, batch=batch, writers=writers)


def run_export(engine: Any, settings: Settings, job_id: str, batch: int = BATCH) -> None:
    """Claim and run one export job here and now (scripts, benchmarks and tests)."""
    runners = {KIND: export_runner(settings, batch)}
    worker.execute(engine, job_id, runners, f"direct:{job_id}", _DIRECT_LEASE)


@dataclass
class _Export:
    job: JobRun
    record: StorageRecord
    config_text: str  # the storage's config as stored: a change stops the export
    storage: Storage
    config: LabelConfig
    project_id: int
    high: int  # the project's change number when the job first started: later saves go next
    batch: int
    pool: ThreadPoolExecutor
    written: int = 0
    hold: int | None = None  # export_seq stays here: an annotation above it failed


def run(job: JobRun, settings: Settings, batch: int = BATCH, writers: int = WRITERS) -> None:
    job.cancel_message = _canceled_message
    if not _take_turn(job):
        return
    export = _prepare(job, settings, max(1, batch), writers)
    try:
        with export.pool, job.engine.connect() as conn:
            cursor = dict(job.details.get("cursor") or {})
            if cursor.get("phase") != "delete":
                if not _write_all(export, conn, cursor):
                    return
                cursor = {"phase": "delete", "after": 0}
            if export.record.can_delete_objects:
                _delete_stale(export, conn, int(cursor.get("after") or 0))
    finally:
        close = getattr(export.storage, "close", None)  # Redis: its connections
        if close is not None:
            close()


def _canceled_message(job: JobRun) -> str:
    c = job.counts
    return (
        f"canceled after {job.done} annotations: the {c.get('written', 0)} objects written "
        f"and {c.get('deleted', 0)} deleted stay so; the next export goes on from there"
    )


# --- one export of a storage at a time -------------------------------------------------


def _take_turn(job: JobRun) -> bool:
    """Wait while an older export of the storage runs; False (the job is then finished) if
    a newer one runs already: it writes everything this one would. The older ones waited
    for are in ``details.waited_for``."""
    waited: list[str] = []
    while True:
        job.check_stop()
        with job.engine.connect() as conn:
            others = conn.execute(
                select(jobs.c.id, jobs.c.created_at).where(
                    jobs.c.storage_id == job.row.storage_id,
                    jobs.c.kind == KIND,
                    jobs.c.status == RUNNING,
                    jobs.c.id != job.id,
                    jobs.c.lease_until > datetime.now(UTC),
                )
            ).all()
        mine = (job.row.created_at, job.id)
        if any((o.created_at, o.id) > mine for o in others):
            newer = max(others, key=lambda o: (o.created_at, o.id)).id
            job.finish(f"nothing to do: the newer export {newer} of this storage writes it all")
            return False
        if not others:
            return True
        fresh = [o.id for o in others if o.id not in waited]
        if fresh:
            waited += fresh
            job.describe(waited_for=waited)
        time.sleep(WAIT_POLL)


def _prepare(job: JobRun, settings: Settings, batch: int, writers: int) -> _Export:
    org_id, storage_id = job.row.org_id, job.row.storage_id
    if storage_id is None:
        raise JobFailed("the job names no storage")
    with job.engine.connect() as conn:
        try:
            record = get_record(conn, settings, org_id, storage_id)
        except TetherError:
            raise JobFailed(f"storage {storage_id} is gone") from None
        if record.role != "target" or record.project_id is None:
            raise JobFailed(f"storage {storage_id} is not a target storage of a project")
        try:
            config = projects.config_of(conn, org_id, record.project_id)
        except TetherError:
            raise JobFailed(f"the project of storage {storage_id} is gone") from None
        config_text = conn.execute(
            select(storages.c.config).where(storages.c.id == storage_id)
        ).scalar_one()
        if orjson.loads(config_text) != record.config:
            raise JobFailed(f"storage {storage_id} changed as the export started")
        high = job.details.get("high")
        if high is None:
            high = conn.execute(
                select(project_rows.c.annotation_seq).where(project_rows.c.id == record.project_id)
            ).scalar_one()
            start = min(record.export_seq, int(high))
            below = _count(conn, record.project_id, start)
            above = _count(conn, record.project_id, int(high), start)
            job.describe(total=below + above, high=int(high), start=start, below=below)
    try:
        storage = open_backend(settings, record)
    except TetherError as exc:
        raise JobFailed(f"the storage cannot be opened: {exc}") from exc
    pool = ThreadPoolExecutor(max(1, writers), thread_name_prefix="export-write")
    return _Export(
        job, record, config_text, storage, config, record.project_id, int(high), batch, pool
    )


def _count(conn: Connection, project_id: int, through: int, after: int | None = None) -> int:
    """The project's annotations saved at or below change number ``through`` (and above
    ``after``)."""
    query = select(func.count()).where(a.c.project_id == project_id, a.c.seq <= through)
    if after is not None:
        query = query.where(a.c.seq > after)
    return int(conn.execute(query).scalar_one())


# --- writing new and changed annotations ------------------------------------------------


@dataclass
class _Batch:
    last: int  # the change number the batch's range ends at (the cursor once committed)
    compared: int  # annotations in the range
    futures: list[Future[list[_Outcome]]]  # each a few objects' outcomes


_Outcome = tuple[int, int, int, str, Any]  # id, version, seq, key, the TetherError or None


def _write_all(export: _Export, conn: Connection, cursor: dict[str, Any]) -> bool:
    """Write every new or changed annotation above the cursor; False once canceled."""
    if "seq" in cursor:
        after, export.hold = int(cursor["seq"]), cursor.get("hold")
    else:
        started = _start(export, conn)
        if started is None:
            return False
        after = started
    pending: _Batch | None = None
    for batch in _batches(export, conn, after):
        if pending is not None and not _commit(export, conn, pending):
            return False
        pending = batch
    if pending is not None and not _commit(export, conn, pending):
        return False
    _advance(export, conn, export.high)
    return True


def _start(export: _Export, conn: Connection) -> int | None:
    """The job's first step: the annotations at or below the storage's ``export_seq`` (as
    ``_prepare`` found it) are unchanged, counted at once; the cursor starts there. None
    once canceled."""
    job = export.job
    start, below = int(job.details["start"]), int(job.details["below"])
    if conn.in_transaction():
        conn.rollback()
    with conn.begin():
        job.keep_cursor(conn, {"seq": start})
        going_on = job.record(conn, job.done + below, {"unchanged": below})
    return start if going_on else None


def _batches(export: _Export, conn: Connection, after: int) -> Iterator[_Batch]:
    """Each batch read and its writes started (the next is read while they run). The first
    batches are small (32, 64, ... up to ``batch``): writes start after a short read."""
    size = min(export.batch, _FIRST_BATCH)
    while True:
        export.job.check_stop()
        rows = _rows_above(conn, export, after, size)
        last = int(rows[-1].seq) if len(rows) == size else export.high
        if last <= after:
            return
        conn.rollback()  # end the read transaction: the writer's commits are its own
        changed = [row for row in rows if row.linked != row.version]
        # The writers make the bodies too: writes start at once, the next batch is read
        # meanwhile, and a future stands for a few objects, not one.
        futures = [
            export.pool.submit(_write_some, export, changed[start : start + _PER_TASK])
            for start in range(0, len(changed), _PER_TASK)
        ]
        yield _Batch(last, len(rows), futures)
        after, size = last, min(export.batch, size * 2)


def _rows_above(conn: Connection, export: _Export, after: int, limit: int) -> list[Any]:
    """The next ``limit`` annotations saved above change number ``after`` (up to the job's
    ``high``), in that order, as ``object_rows`` gives them plus ``linked``: the version
    their link holds (None without one). Their ids first, then the rows by id: PostgreSQL
    planned the one query of a range with hash joins over whole tables once it had stats."""
    ids = list(
        conn.execute(
            select(a.c.id)
            .where(a.c.project_id == export.project_id, a.c.seq > after, a.c.seq <= export.high)
            .order_by(a.c.seq)
            .limit(limit)
        ).scalars()
    )
    if not ids:
        return []
    link = and_(links.c.storage_id == export.record.id, links.c.annotation_id == a.c.id)
    query = (
        _object_query(links.c.version.label("linked"))
        .outerjoin(links, link)
        .where(a.c.id.in_(ids))
        .order_by(a.c.seq)
    )
    return list(conn.execute(query))


TASK_COLUMNS = (
    t.c.created_at.label("task_created_at"),
    t.c.updated_at.label("task_updated_at"),
    t.c.status.label("task_status"),
    t.c.total_annotations,
    t.c.cancelled_annotations,
    t.c.total_predictions,
)


def objects(
    conn: Connection, record: StorageRecord, config: LabelConfig, ids: Sequence[int]
) -> list[tuple[int, int, str, bytes]]:
    """(id, version, key, object body) of each annotation of ``ids`` still there: what the
    export writes to the target ``record`` for them."""
    return [object_of(record, config, row) for row in object_rows(conn, ids)]


def object_rows(conn: Connection, ids: Sequence[int]) -> list[Any]:
    """The annotations of ``ids`` still there, each with its task, data row and user's
    email, in one query."""
    if not ids:
        return []
    return list(conn.execute(_object_query().where(a.c.id.in_(ids)).order_by(a.c.id)))


class _Stored(TypeDecorator[Any]):
    """A JSON column read as an ``orjson.Fragment``: spliced into the body as stored."""

    impl = Text
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else orjson.Fragment(value)


_ANNOTATION = tuple(
    type_coerce(c, _Stored).label("result") if c.name == "result" else c for c in a.c
)


def _object_query(*more: Any) -> Any:
    """What an object is made of: annotations joined to their tasks, data rows and users."""
    return (
        select(*_ANNOTATION, *TASK_COLUMNS, data_rows.c.row_data, users.c.email, *more)
        .join_from(a, t, and_(t.c.project_id == a.c.project_id, t.c.data_row_id == a.c.data_row_id))
        .join(data_rows, data_rows.c.id == a.c.data_row_id)
        .outerjoin(users, users.c.id == a.c.completed_by)
    )


def object_of(record: StorageRecord, config: LabelConfig, row: Any) -> tuple[int, int, str, bytes]:
    """(id, version, key, body) of one row of ``object_rows``."""
    body = shapes.target_object(row, _task(config, row), row.email)
    return int(row.id), int(row.version), record.object_key(str(row.id)), orjson.dumps(body)


def _write_some(export: _Export, rows: list[Any]) -> list[_Outcome]:
    """Make and write the objects of ``rows`` (in a writer thread): their outcomes."""
    out: list[_Outcome] = []
    for row in rows:
        annotation_id, version, key, body = object_of(export.record, export.config, row)
        try:
            export.storage.write(key, body, content_type="application/json")
        except TetherError as exc:
            out.append((annotation_id, version, int(row.seq), key, exc))
        else:
            out.append((annotation_id, version, int(row.seq), key, None))
    return out


def _task(config: LabelConfig, row: Any) -> dict[str, Any]:
    row_data = orjson.loads(row.row_data)
    data, _missing = config.task_data(row_data)
    task_row = SimpleNamespace(
        data_row_id=row.data_row_id,
        created_at=row.task_created_at,
        updated_at=row.task_updated_at,
        status=row.task_status,
        total_annotations=row.total_annotations,
        cancelled_annotations=row.cancelled_annotations,
        total_predictions=row.total_predictions,
    )
    return shapes.task(task_row, data if data is not None else row_data, row.project_id)


def _commit(export: _Export, conn: Connection, batch: _Batch) -> bool:
    """Wait for the batch's writes; record its links, counts and cursor in one transaction.
    False once the job was canceled (with this batch counted)."""
    done, errors = [], []
    for future in batch.futures:
        for annotation_id, version, seq, key, failure in future.result():
            if failure is None:
                done.append((annotation_id, version))
            else:
                errors.append(_error(failure, annotation_id, key))
                if export.hold is None:  # (batches go up: the first failure is the lowest)
                    export.hold = seq - 1
    if errors and not done and not export.written and not export.job.counts.get("written"):
        # The first writes all refused: the storage is wrong, not these annotations.
        raise JobFailed(f"the storage refused every write: {errors[0].message}")
    now = datetime.now(UTC)
    job = export.job
    if conn.in_transaction():  # the reads of the next batch
        conn.rollback()
    with conn.begin():
        _check_storage(conn, export.record.id, export.config_text)
        _upsert_links(conn, export.record.id, done, now)
        handled = len(done) + len(errors)
        counts = {"written": len(done), "unchanged": batch.compared - handled}
        job.keep_cursor(conn, {"seq": batch.last, "hold": export.hold})
        going_on = job.record(conn, job.done + batch.compared, counts, errors)
    export.written += len(done)
    return going_on


def _advance(export: _Export, conn: Connection, last: int) -> None:
    """Once every batch is committed: the storage holds the project's annotations up to
    ``last`` (or up to ``hold``). Set only here, not by each batch: an UPDATE of the
    storage's row per batch, beside the key-share locks its links' inserts take, cost
    PostgreSQL more with every batch; and a lower ``export_seq`` is only more to read
    (the links tell what is there already)."""
    if conn.in_transaction():
        conn.rollback()
    with conn.begin():
        moved = conn.execute(
            update(storages)
            .where(storages.c.id == export.record.id, storages.c.config == export.config_text)
            .values(export_seq=last if export.hold is None else export.hold)
        ).rowcount
    if not moved:
        raise JobFailed(f"storage {export.record.id} was deleted or changed; the export stops")


def _upsert_links(
    conn: Connection, storage_id: int, done: list[tuple[int, int]], now: datetime
) -> None:
    """One ``INSERT ... SELECT`` over the pairs sent as one value (PostgreSQL arrays, a JSON
    list on SQLite), as ``labels.add_tasks`` does: bound row by row, the links of a batch
    cost more than its reads."""
    if not done:
        return
    dialect: Any
    if conn.dialect.name == "postgresql":
        ids = bindparam("ids", [i for i, _v in done], type_=postgresql.ARRAY(Integer))
        versions = bindparam("versions", [v for _i, v in done], type_=postgresql.ARRAY(Integer))
        pairs: Any = func.unnest(ids, versions).table_valued("id", "version").render_derived()
        dialect, annotation_id, version = postgresql, pairs.c.id, pairs.c.version
    else:
        pairs = func.json_each(orjson.dumps(done).decode()).table_valued("value")
        dialect = sqlite
        annotation_id = func.json_extract(pairs.c.value, "$[0]")
        version = func.json_extract(pairs.c.value, "$[1]")
    source = select(
        literal(storage_id), annotation_id, version, literal(now, links.c.written_at.type)
    ).where(true())  # (SQLite reads an ON CONFLICT after a SELECT without WHERE as a join's)
    statement = dialect.insert(links).from_select(
        ["storage_id", "annotation_id", "version", "written_at"], source
    )
    statement = statement.on_conflict_do_update(
        index_elements=[links.c.storage_id, links.c.annotation_id],
        set_={"version": statement.excluded.version, "written_at": statement.excluded.written_at},
    )
    conn.execute(statement)


def _error(exc: TetherError, annotation_id: int, key: str) -> ItemError:
    return ItemError(
        None,
        exc.code,
        exc.message,
        item_key=key,
        details={"annotation_id": annotation_id},
    )


def _check_storage(conn: Connection, storage_id: int, config_text: str | None = None) -> None:
    """The storage must still be there (its links go with it), with ``config_text`` when
    given (another place holds none of what was written)."""
    query = select(storages.c.config).where(storages.c.id == storage_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True, key_share=True)
    found = conn.execute(query).first()
    if found is None:
        raise JobFailed(f"storage {storage_id} was deleted; the export stops")
    if config_text is not None and found.config != config_text:
        raise JobFailed(f"storage {storage_id} was changed; the export stops")


# --- deleting the objects of deleted annotations ----------------------------------------


def _delete_stale(export: _Export, conn: Connection, after: int) -> None:
    """Delete the object of every link whose annotation is gone, then the link."""
    job = export.job
    stale = _stale_count(conn, export, after)
    conn.rollback()
    if stale:
        job.describe(total=job.done + stale)
    while True:
        job.check_stop()
        ids = _stale_ids(conn, export, after)
        conn.rollback()
        if not ids:
            return
        keys = [export.record.object_key(str(i)) for i in ids]
        outcomes = list(export.pool.map(_try(export.storage.delete), keys))
        gone = [i for i, failure in zip(ids, outcomes, strict=True) if failure is None]
        errors = [
            _error(failure, i, key)
            for i, key, failure in zip(ids, keys, outcomes, strict=True)
            if failure is not None
        ]
        if conn.in_transaction():
            conn.rollback()
        with conn.begin():
            _check_storage(conn, export.record.id)
            if gone:
                conn.execute(
                    delete(links).where(
                        links.c.storage_id == export.record.id, links.c.annotation_id.in_(gone)
                    )
                )
            job.keep_cursor(conn, {"phase": "delete", "after": ids[-1]})
            if not job.record(conn, job.done + len(ids), {"deleted": len(gone)}, errors):
                return
        after = ids[-1]


def _stale_query(export: _Export, after: int) -> Any:
    annotation_there = (
        select(a.c.id).where(a.c.id == links.c.annotation_id, a.c.project_id == export.project_id)
    ).exists()
    return select(links.c.annotation_id).where(
        links.c.storage_id == export.record.id,
        links.c.annotation_id > after,
        ~annotation_there,
    )


def _stale_ids(conn: Connection, export: _Export, after: int) -> list[int]:
    query = _stale_query(export, after).order_by(links.c.annotation_id).limit(export.batch)
    return [int(i) for i in conn.execute(query).scalars()]


def _stale_count(conn: Connection, export: _Export, after: int) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(_stale_query(export, after).subquery())
        ).scalar_one()
    )


def _try(call: Callable[[str], None]) -> Callable[[str], TetherError | None]:
    def attempt(key: str) -> TetherError | None:
        try:
            call(key)
        except TetherError as exc:
            return exc
        return None

    return attempt
