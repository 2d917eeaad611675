"""Running a ``sync`` job: reconcile a source storage with its dataset.

The listing (a thread, ``sync.listing``) and the link table (``sync.links``) are merged as
two sorted streams (``sync.diff``); the writer takes the merged objects a chunk at a time
and writes, in one transaction per chunk, the rows, their links, the job's counts and the
key the chunk ends at (the job's ``details.cursor``). A sync killed at any moment resumes
after the last committed chunk (``start_after`` = that key), so it ends with the exact
counts, no row twice and none lost.

Counts (``job.counts``): ``listed``, ``unchanged`` and ``missing`` count objects;
``created``, ``updated`` and ``removed`` count data rows (a manifest object may hold many);
``failed`` counts errors (an unreadable object is one, a bad item of a manifest one).
``progress.done`` is the objects compared so far (listed or missing).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, exists, select
from sqlalchemy.exc import IntegrityError

from tether.catalog import store
from tether.catalog.metadata_schema import Schema, load_schema
from tether.catalog.rows import NormalRow
from tether.catalog.store import DatasetGone, Target, allocate_ids, begin_writing, reserve_ids
from tether.config import Settings
from tether.db.engine import foreign_keys_unchecked, is_sqlite
from tether.db.tables import data_rows, storage_links, storages
from tether.db.wal import Checkpointer
from tether.errors import TetherError
from tether.jobs import worker
from tether.jobs.service import ItemError
from tether.jobs.worker import JobFailed, JobRun, Runner
from tether.storages.base import ObjectInfo, ReadsMany, Storage, StorageError
from tether.sync import items, links, split
from tether.sync.connections import StorageRecord, get_record, open_backend
from tether.sync.diff import OutOfOrder, Pair, Same, merge, version_of
from tether.sync.listing import Ahead, Scope, listing

log = logging.getLogger(__name__)
KIND = "sync"
COUNTS = ("listed", "created", "updated", "unchanged", "missing", "removed")
_DIRECT_LEASE = timedelta(minutes=5)
_READERS = 8  # objects read at once in manifest mode
_BATCH = 500  # small objects a ``read_many`` reads


def sync_runner(
    settings: Settings,
    chunk_objects: int | None = None,
    enqueue: Callable[[str], None] | None = None,
) -> Runner:
    """The runner of ``sync`` jobs and of their parts (``sync_part``), for ``runtime.py``
    to register; ``enqueue`` queues the parts of a split sync (None: the sync's own worker
    runs them)."""
    return partial(run, settings=settings, chunk_objects=chunk_objects, enqueue=enqueue)


def run_sync(
    engine: Any,
    settings: Settings,
    job_id: str,
    chunk_objects: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Claim and run one sync job here and now (scripts, benchmarks and tests; workers go
    through the queue)."""
    runner = sync_runner(settings, chunk_objects)
    runners = {KIND: runner, split.PART_KIND: runner}
    worker.execute(engine, job_id, runners, f"direct:{job_id}", _DIRECT_LEASE, stop)


@dataclass
class _Sync:
    """What a running sync holds: the storage, the target and the options."""

    job: JobRun
    record: StorageRecord
    storage: Storage
    schema: Schema
    target: Target
    scope: Scope
    chunk: int
    field_names: frozenset[str] = frozenset()
    pool: ThreadPoolExecutor | None = None
    cursor: str | None = None


@dataclass
class _Chunk:
    pairs: list[Pair] = field(default_factory=list)
    same: int = 0  # listed objects in it known unchanged from their page (``Same``)
    last: str | None = None  # its last key: where the sync resumes once it is written
    work: int = 0  # objects in it that need a write


def run(
    job: JobRun,
    settings: Settings,
    chunk_objects: int | None = None,
    enqueue: Callable[[str], None] | None = None,
) -> None:
    """Run a sync job to its end; or, once the worker stops, up to the end of the chunk
    being written (the job then resumes on a worker); or, once canceled, likewise. A sync
    asked to run in parts (``params.parts``) splits (``sync.split``)."""
    job.cancel_message = _canceled_message
    if job.kind == KIND and int(job.params.get("parts") or 1) > 1:
        part = sync_runner(settings, chunk_objects, enqueue)
        split.run_parent(job, settings, part, enqueue)
        return
    sync = _prepare(job, settings, chunk_objects or settings.sync_chunk_objects)
    planner = Ahead(partial(_planned, sync), "sync-planner", depth=2)
    try:
        with closing(planner):
            _write_all(sync, planner.items())
    except StorageError as exc:
        raise JobFailed(f"the storage failed: {exc}") from exc
    except OutOfOrder as exc:
        raise JobFailed(f"the storage listed its objects out of key order: {exc}") from exc
    except DatasetGone as exc:
        raise JobFailed(str(exc)) from exc
    finally:
        if sync.pool is not None:
            sync.pool.shutdown(cancel_futures=True)
        close = getattr(sync.storage, "close", None)
        if close is not None:
            close()


def _canceled_message(job: JobRun) -> str:
    counts = job.counts
    return (
        f"canceled after {job.done} objects: the {counts.get('created', 0)} rows created, "
        f"{counts.get('updated', 0)} updated and {counts.get('removed', 0)} removed before "
        "the cancel stay so; a new sync goes on from there"
    )


def _prepare(job: JobRun, settings: Settings, chunk: int) -> _Sync:
    org_id, storage_id = job.row.org_id, job.row.storage_id
    if storage_id is None:
        raise JobFailed("the job names no storage")
    with job.engine.connect() as conn:
        try:
            record = get_record(conn, settings, org_id, storage_id)
        except Exception as exc:
            raise JobFailed(f"storage {storage_id} is gone") from exc
        schema = load_schema(conn, org_id)
    if record.dataset_id is None:
        raise JobFailed(f"storage {storage_id} belongs to no dataset")
    try:
        regex = re.compile(record.regex_filter) if record.regex_filter else None
    except re.error as exc:
        raise JobFailed(
            f"regex_filter {record.regex_filter!r} is not a valid regex: {exc}"
        ) from None
    try:
        storage = open_backend(settings, record)
    except TetherError as exc:  # the backend's errors, and the outbound-URL guard's
        raise JobFailed(f"the storage cannot be opened: {exc}") from exc
    params = job.params
    cursor = job.details.get("cursor")
    scope = Scope(
        prefix=record.prefix,
        recursive=record.recursive,
        regex=regex,
        after=cursor if cursor is not None else params.get("after"),
        until=params.get("until"),
    )
    target = Target(org_id, record.dataset_id, job.row.created_by, upsert=False)
    sync = _Sync(job, record, storage, schema, target, scope, max(1, chunk), cursor=cursor)
    if not record.treat_every_object_as_source_file:
        sync.field_names = frozenset(f.name for f in schema.fields)
        sync.pool = ThreadPoolExecutor(_READERS, thread_name_prefix="sync-read")
    return sync


# --- chunks ------------------------------------------------------------------------------
#
# Two threads beside the job's own: the listing (``sync.listing``) a few pages ahead; the
# planner, which compares each page with the links of its key range (``sync.diff``), cuts
# chunks and works out each chunk's rows (normalising them, reading manifest objects). The
# job's own thread writes one planned chunk while the next is planned (the database driver
# lets go of the GIL while it works).


def _planned(sync: _Sync) -> Iterator[_Plan]:
    """Every chunk of the sync, planned (in the planner thread)."""
    scope = sync.scope
    listed = listing(sync.storage, scope)
    with closing(listed), links.Links(sync.job.engine, sync.record.id) as linked:
        merged = merge(listed.items(), linked, scope.after, scope.until)
        for chunk in _chunks(sync, merged):
            yield _plan(sync, chunk)


def _chunks(sync: _Sync, merged: Iterator[Pair | Same]) -> Iterator[_Chunk]:
    """The merged objects a chunk at a time: ``chunk`` objects that need a write, or ten
    times as many that need none (a chunk of unchanged objects costs one small
    transaction)."""
    size, remove = sync.chunk, sync.record.remove_missing
    current = _Chunk()
    for item in merged:
        if isinstance(item, Same):
            current.same += item.objects
            current.last = item.last
        else:
            info, link = item
            current.pairs.append(item)
            if info is None:
                assert link is not None
                current.work += remove
                current.last = link.key
            else:
                current.last = info.key
                if link is None or link.version != version_of(info):
                    current.work += 1
        if current.work >= size or len(current.pairs) + current.same >= 10 * size:
            yield current
            current = _Chunk()
    if current.last is not None:
        yield current


def _write_all(sync: _Sync, plans: Iterator[_Plan]) -> None:
    """Write every planned chunk on one connection. On SQLite, as imports do, it leaves
    checkpoints to a thread, and checks no foreign keys while a chunk only inserts (the
    chunk checks its dataset and storage itself, under the write lock); a chunk that deletes
    keeps them, so whatever cascades from a data row still does."""
    job, engine = sync.job, sync.job.engine
    checkpointer = Checkpointer(engine)
    with engine.connect() as conn, checkpointer.writer(conn):
        for plan in plans:
            job.check_stop()
            checkpointer.keep_up()
            checks = nullcontext() if plan.doomed else foreign_keys_unchecked(conn)
            with checks:
                going_on = _write(conn, sync, plan)
            checkpointer.committed()
            if not going_on:
                return  # canceled, with this chunk counted


@dataclass
class _Plan:
    """One chunk's work, sorted out before its transaction."""

    done: int = 0  # objects compared
    cursor: str = ""  # the chunk's last key
    listed: int = 0
    unchanged: int = 0
    missing: int = 0
    fresh: list[tuple[int, NormalRow]] = field(default_factory=list)
    fresh_links: list[tuple[str, int, str | None]] = field(default_factory=list)
    updates: list[tuple[int, NormalRow, int]] = field(default_factory=list)
    update_items: list[tuple[str, int]] = field(default_factory=list)  # (key, item) each
    versions: list[tuple[str, str | None]] = field(default_factory=list)
    doomed: list[tuple[str, int, int]] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)


def _rows_of(sync: _Sync, infos: list[ObjectInfo]) -> list[items.ObjectRows]:
    """The rows of objects: of each asset; or of each manifest object, read a batch a round
    trip where the backend can (``ReadsMany``), else by a few threads at once."""
    storage = sync.storage
    if sync.pool is None:
        return [items.source_file(storage, info, sync.schema) for info in infos]
    read = partial(items.manifest, storage, schema=sync.schema, field_names=sync.field_names)
    if not isinstance(storage, ReadsMany):
        return list(sync.pool.map(read, infos))
    small = [info.key for info in infos if info.size <= items.IN_MEMORY]
    values: dict[str, bytes | None] = {}
    for start in range(0, len(small), _BATCH):
        batch = small[start : start + _BATCH]
        values.update(zip(batch, storage.read_many(batch), strict=True))
    return [read(info, data=values.get(info.key)) for info in infos]


def _plan(sync: _Sync, chunk: _Chunk) -> _Plan:
    assert chunk.last is not None
    plan = _Plan(done=len(chunk.pairs) + chunk.same, cursor=chunk.last)
    plan.listed = plan.unchanged = chunk.same
    to_read: list[ObjectInfo] = []
    previous: dict[str, links.Linked] = {}
    for info, link in chunk.pairs:
        if info is None:
            assert link is not None
            plan.missing += 1
            if sync.record.remove_missing:
                plan.doomed += [(link.key, i, row) for i, row in sorted(link.rows.items())]
            continue
        plan.listed += 1
        if link is not None:
            if link.version == version_of(info):
                plan.unchanged += 1
                continue
            previous[info.key] = link
        to_read.append(info)
    for found in _rows_of(sync, to_read):
        _sort_out(plan, found, previous.get(found.info.key))
    return plan


def _sort_out(plan: _Plan, found: items.ObjectRows, link: links.Linked | None) -> None:
    """An object's rows: new items are created, items it had are updated, items it no
    longer has are removed. An object that cannot be read keeps its rows and its old
    version (so the next sync tries it again)."""
    key, version = found.info.key, version_of(found.info)
    for index, code, message in found.errors:
        details = {"item_index": index} if index is not None else {}
        plan.errors.append(ItemError(None, code, message, item_key=key, details=details))
    had = link.rows if link is not None else {}
    for index, row in found.rows.items():
        if index in had:
            plan.updates.append((len(plan.updates), row, had[index]))
            plan.update_items.append((key, index))
        else:
            plan.fresh.append((len(plan.fresh), row))
            plan.fresh_links.append((key, index, version))
    if link is None or found.unreadable:
        return
    failed = {index for index, _code, _message in found.errors}
    plan.doomed += [
        (key, index, row)
        for index, row in sorted(had.items())
        if index not in found.rows and index not in failed
    ]
    plan.versions.append((key, version))


def _write(conn: Connection, sync: _Sync, plan: _Plan) -> bool:
    """Write one chunk with the job's progress and cursor; False if the job was canceled."""
    job, record, target = sync.job, sync.record, sync.target
    sqlite = is_sqlite(conn)
    wanted = len(plan.fresh)
    first_id = allocate_ids(job.engine, wanted) if wanted and not sqlite else 0
    now = datetime.now(UTC)
    cursor = plan.cursor
    with conn.begin():
        begin_writing(conn)
        _check_storage(conn, record.id)
        removed = links.remove(conn, record.id, plan.doomed)
        updated = _update(conn, target, plan, now)
        links.set_versions(conn, record.id, plan.versions)
        created = 0
        if plan.fresh and record.treat_every_object_as_source_file:
            plan.unchanged += _adopt(conn, sync, plan)
        if plan.fresh:
            if sqlite:
                first_id = reserve_ids(conn, len(plan.fresh))
            # A key given twice within a chunk is caught here, across chunks by the
            # database's unique key: memory stays flat however many keys a sync writes.
            target.seen_keys.clear()
            result = store.write_rows(conn, target, plan.fresh, first_id, now)
            created = result.created
            ids = _created_ids(conn, plan.fresh, first_id, bool(result.errors))
            links.insert(
                conn,
                record.id,
                [
                    (key, index, ids[position], version)
                    for position, (key, index, version) in enumerate(plan.fresh_links)
                    if position in ids
                ],
            )
            plan.errors += _name_errors(result.errors, plan.fresh_links)
        counts = {
            "listed": plan.listed,
            "created": created,
            "updated": updated,
            "unchanged": plan.unchanged,
            "missing": plan.missing,
            "removed": removed,
        }
        sync.cursor = cursor
        job.keep_cursor(conn, cursor)
        return job.record(conn, job.done + plan.done, counts, plan.errors)


def _adopt(conn: Connection, sync: _Sync, plan: _Plan) -> int:
    """Link, instead of creating, the rows that already stand for new objects: a file put
    into the storage by ``tether upload`` (or the SDK) became a row whose global key is the
    object's URI before any sync saw the object. Such a row of the dataset that no storage
    links yet gets its link; the object is then unchanged, not made twice. Returns how many
    objects were adopted (``plan.fresh`` keeps the rest)."""
    uri = sync.storage.uri
    uris = {uri(key): position for position, (key, _index, _v) in enumerate(plan.fresh_links)}
    found = conn.execute(
        select(data_rows.c.id, data_rows.c.global_key).where(
            data_rows.c.org_id == sync.target.org_id,
            data_rows.c.dataset_id == sync.target.dataset_id,
            store.key_in(conn, list(uris)),
            ~exists().where(storage_links.c.data_row_id == data_rows.c.id),
        )
    ).all()
    if not found:
        return 0
    adopted = {uris[global_key]: row_id for row_id, global_key in found}
    links.insert(
        conn,
        sync.record.id,
        [
            (key, index, adopted[position], version)
            for position, (key, index, version) in enumerate(plan.fresh_links)
            if position in adopted
        ],
    )
    kept = [position for position in range(len(plan.fresh)) if position not in adopted]
    plan.fresh = [(new, plan.fresh[old][1]) for new, old in enumerate(kept)]
    plan.fresh_links = [plan.fresh_links[old] for old in kept]
    return len(adopted)


def _check_storage(conn: Connection, storage_id: int) -> None:
    """The storage must still be there (and stay, on PostgreSQL, until the chunk commits)."""
    query = select(storages.c.id).where(storages.c.id == storage_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True, key_share=True)
    if conn.execute(query).first() is None:
        raise JobFailed(f"storage {storage_id} was deleted; the sync stops")


def _update(conn: Connection, target: Target, plan: _Plan, now: datetime) -> int:
    """Bring the rows of changed objects up to date; an item whose new global key another
    row holds is an error (its row stays as it was), the others are updated."""
    if not plan.updates:
        return 0
    # The write path updates with the driver's own cursor: its error is the driver's.
    taken = (IntegrityError, conn.dialect.dbapi.IntegrityError)  # type: ignore[union-attr]
    try:
        with conn.begin_nested():
            return store.update_rows(conn, target, plan.updates, now).updated
    except taken:
        pass
    updated = 0
    for update_, (key, index) in zip(plan.updates, plan.update_items, strict=True):
        try:
            with conn.begin_nested():
                updated += store.update_rows(conn, target, [update_], now).updated
        except taken:
            message = f"global key {update_[1].global_key!r} is already used by another data row"
            details = {"item_index": index}
            plan.errors.append(
                ItemError(
                    None, "global_key_exists", message, update_[1].global_key, None, key, details
                )
            )
    return updated


def _created_ids(
    conn: Connection, fresh: list[tuple[int, NormalRow]], first_id: int, had_errors: bool
) -> dict[int, int]:
    """Position in ``fresh`` -> id of the row made from it. Rows take the reserved ids in
    order; when some did not land (a global key taken), the rows in the reserved range tell
    which did: keyed ones by their key, the others in order."""
    if not had_errors:
        return {position: first_id + position for position in range(len(fresh))}
    landed = conn.execute(
        select(data_rows.c.id, data_rows.c.global_key)
        .where(data_rows.c.id.between(first_id, first_id + len(fresh) - 1))
        .order_by(data_rows.c.id)
    ).all()
    by_key = {key: row_id for row_id, key in landed if key is not None}
    plain = iter([row_id for row_id, key in landed if key is None])
    ids: dict[int, int] = {}
    for position, row in fresh:
        if row.global_key is None:
            ids[position] = next(plain)
        elif row.global_key in by_key:
            ids[position] = by_key.pop(row.global_key)
    return ids


def _name_errors(
    errors: list[ItemError], fresh_links: list[tuple[str, int, str | None]]
) -> list[ItemError]:
    """The write path's errors name a row by its position in the chunk: name its object."""
    named = []
    for error in errors:
        position = error.index
        if position is not None and 0 <= position < len(fresh_links):
            key, index, _version = fresh_links[position]
            error.item_key, error.index = key, None
            error.details = {**error.details, "item_index": index}
        named.append(error)
    return named
