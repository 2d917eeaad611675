"""Tasks: the data rows of a labeling project, addressed by the row's id within the project.

Adding rows is an ``add_tasks`` job. Rows are selected by filters (a dataset, metadata
filters and a media type: the filters of data row listing, built by ``catalog.queries``) or
named (``data_row_ids``, ``global_keys``); named rows with filters must match them too. Each
chunk of rows joins in a transaction of its own, with the job's progress. Counts: ``added``,
``existing`` (a task already), ``imported_annotations``, ``imported_predictions`` and
``failed``. Per-item errors, never a failed job: a row of another organization or unknown
(``not_found``), a named row the filters leave out (``not_selected``), a row whose data
lacks a key the label config shows (``missing_data_keys``), and an imported Label Studio
annotation or prediction that does not fit the config (``region_mismatch``, ``bad_annotation``,
``bad_prediction``: only that one is left out).

A Label Studio task imported into the catalog keeps its ``annotations`` and ``predictions``
in the row's ``extra``; they come in when the row becomes a task (only then, so once
however often the row is added), and the task's ``imported_at`` says when.

``next_task`` hands an annotator the first unlabeled task nobody holds, under a lease
(``lease_user_id`` until ``lease_until``): taking it is a compare-and-set on the lease, so
two annotators asking at once never get the same task, on SQLite (one writer at a time)
and PostgreSQL (an UPDATE re-checks its condition on the row it waited for) alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from tether.catalog import datasets, queries
from tether.catalog.datasets import MAX_ID, is_id
from tether.catalog.media import normal_media_type
from tether.catalog.queries import MetadataFilter, RowFilter
from tether.db.tables import TASK_STATUSES, data_rows, tasks
from tether.errors import Invalid, NotFound
from tether.jobs import service as jobs
from tether.jobs.service import ItemError
from tether.jobs.worker import JobFailed, JobRun, Runner
from tether.projects import labels, projects
from tether.projects.label_config import LabelConfig
from tether.timeutil import as_utc, iso

KIND = "add_tasks"
MAX_NAMED = 100_000  # data row ids plus global keys in one request
MAX_IDS_FILTER = 1000  # data_row_id filters of one listing
MAX_PAGE = queries.MAX_PAGE
MAX_ROW_ID = 2**63 - 1
# A listing with data row filters walks the project's tasks (checking each row) when the
# project has fewer tasks than this; else it walks the matching rows (checking each for a
# task), as a data row page does.
PROBE_TASKS = 5000
WINDOW = 64  # unlabeled tasks next_task looks at a time for one nobody holds
RETRIES = 2  # times a chunk is tried again after rows were deleted under it
COUNTS = ("added", "existing", "imported_annotations", "imported_predictions")


# --- adding rows -----------------------------------------------------------------------------


@dataclass
class Selection:
    """Which rows an ``add_tasks`` job adds."""

    dataset_id: int | None = None
    media_type: str | None = None
    metadata: list[MetadataFilter] = field(default_factory=list)
    data_row_ids: list[int] | None = None
    global_keys: list[str] | None = None

    @property
    def row_filter(self) -> RowFilter:
        return RowFilter(
            dataset_id=self.dataset_id, media_type=self.media_type, metadata=self.metadata
        )

    @property
    def filtered(self) -> bool:
        return not queries.is_open(self.row_filter)

    @property
    def named(self) -> bool:
        return self.data_row_ids is not None or self.global_keys is not None

    def params(self) -> dict[str, Any]:
        """As the job keeps it: the filters shown in its ``options``, the named rows not."""
        return {
            "dataset_id": self.dataset_id,
            "media_type": self.media_type,
            "metadata": [[m.field, m.op, m.value] for m in self.metadata],
            "named": len(self.data_row_ids or ()) + len(self.global_keys or ()),
            "_data_row_ids": self.data_row_ids,
            "_global_keys": self.global_keys,
        }

    @classmethod
    def of_params(cls, params: dict[str, Any]) -> Selection:
        return cls(
            params.get("dataset_id"),
            params.get("media_type"),
            [MetadataFilter(*m) for m in params.get("metadata") or ()],
            params.get("_data_row_ids"),
            params.get("_global_keys"),
        )


def start(
    conn: Connection,
    org_id: int,
    project: int | str,
    *,
    dataset: int | str | None = None,
    metadata: Sequence[MetadataFilter] = (),
    media_type: str | None = None,
    data_row_ids: Sequence[int] | None = None,
    global_keys: Sequence[str] | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Check what was asked and create, in the caller's transaction, the queued
    ``add_tasks`` job (the caller queues it once that commits). Any member may add rows."""
    project_id = projects.get_id(conn, org_id, project)
    selection = Selection(
        int(datasets.get(conn, org_id, dataset)["id"]) if dataset is not None else None,
        _media_type(media_type),
        list(metadata),
        None if data_row_ids is None else [int(i) for i in data_row_ids],
        None if global_keys is None else [str(k) for k in global_keys],
    )
    if not selection.filtered and not selection.named:
        raise Invalid(
            "say which rows to add: a dataset, metadata filters or a media type, and/or "
            "data_row_ids or global_keys",
            code="nothing_selected",
        )
    named = len(selection.data_row_ids or ()) + len(selection.global_keys or ())
    if named > MAX_NAMED:
        raise Invalid(f"at most {MAX_NAMED} data row ids and global keys per request ({named})")
    with suppress(queries.Empty):  # the filters are checked now (unknown fields, operators)
        queries.page_ids_query(conn, org_id, selection.row_filter, None, 1)
    job, _new = jobs.create(
        conn,
        org_id,
        KIND,
        selection.params(),
        selection.dataset_id,
        created_by=user_id,
        project_id=project_id,
        total=named if selection.named else None,
        counts=dict.fromkeys(COUNTS, 0),
    )
    return job


def _media_type(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normal_media_type(value)
    except ValueError as exc:
        raise Invalid(str(exc), {"field": "media_type"}) from None


def add_tasks_runner(chunk_rows: int = 2000) -> Runner:
    """The runner of ``add_tasks`` jobs, for ``runtime.py`` to register."""
    return partial(run, chunk_rows=chunk_rows)


@dataclass
class _Item:
    """One row to add: where it came from in the job's input, and what names it."""

    index: int | None
    key: str
    row: Any  # data_rows' id, global_key, row_data, extra


def run(job: JobRun, chunk_rows: int = 2000) -> None:
    selection = Selection.of_params(job.params)
    org_id, project_id = int(job.row.org_id), int(job.row.project_id)
    with job.engine.connect() as conn:
        try:
            config = projects.config_of(conn, org_id, project_id)
        except NotFound:
            raise JobFailed("the project was deleted before its rows were added") from None
        total = None
        if not selection.named:
            try:
                total = queries.count(conn, org_id, selection.row_filter)[0]
            except Invalid as exc:  # a metadata field deleted since the request
                raise JobFailed(exc.message) from None
    if total is not None:
        job.describe(total)
    add = _add_named if selection.named else _add_matching
    for attempt in range(RETRIES + 1):
        try:
            add(job, config, selection, chunk_rows)
            return
        except IntegrityError:  # a task's foreign key: its project or a row went meanwhile
            with job.engine.connect() as conn:
                try:
                    projects.get_id(conn, org_id, project_id)
                except NotFound:
                    message = "the project was deleted while its rows were being added"
                    raise JobFailed(message) from None
            if attempt == RETRIES:
                raise
            # Rows deleted under the chunk: it rolled back; again, they are not found.


def _add_matching(job: JobRun, config: LabelConfig, selection: Selection, chunk: int) -> None:
    """The rows the filters match, in id order, a chunk a transaction; a resumed job goes
    on after the last chunk it committed (``details.cursor``)."""
    org_id, project_id = int(job.row.org_id), int(job.row.project_id)
    flt = selection.row_filter
    cursor = job.details.get("cursor")
    while True:
        job.check_stop()
        with job.engine.begin() as conn:
            try:
                ids = list(
                    conn.execute(queries.page_ids_query(conn, org_id, flt, cursor, chunk)).scalars()
                )
            except queries.Empty:
                ids = []
            if not ids:
                return
            rows = {r.id: r for r in _rows(conn, org_id, data_rows.c.id, ids)}
            items = [_Item(None, str(i), rows[i]) for i in ids if i in rows]
            counts, errors = _join(conn, org_id, project_id, config, items)
            cursor = ids[-1]
            job.keep_cursor(conn, cursor)
            if not job.record(conn, job.done + len(ids), counts, errors):
                return


def _add_named(job: JobRun, config: LabelConfig, selection: Selection, chunk: int) -> None:
    """The named rows, ids first then global keys (the index of an error counts so), a chunk
    a transaction; a resumed job skips the items it did."""
    org_id, project_id = int(job.row.org_id), int(job.row.project_id)
    named: list[tuple[str, Any]] = [("id", i) for i in selection.data_row_ids or ()]
    named += [("key", k) for k in selection.global_keys or ()]
    flt = selection.row_filter if selection.filtered else None
    for start in range(job.done, len(named), chunk):
        job.check_stop()
        part = named[start : start + chunk]
        with job.engine.begin() as conn:
            ids = [v for kind, v in part if kind == "id"]
            keys = [v for kind, v in part if kind == "key"]
            by_id = {r.id: r for r in _rows(conn, org_id, data_rows.c.id, ids)}
            by_key = {r.global_key: r for r in _rows(conn, org_id, data_rows.c.global_key, keys)}
            found = [by_id.get(v) if kind == "id" else by_key.get(v) for kind, v in part]
            chosen = _matching(conn, org_id, flt, [r.id for r in found if r is not None])
            items, errors = [], []
            for offset, ((kind, value), row) in enumerate(zip(part, found, strict=True)):
                index = start + offset
                key = str(value)
                gk = value if kind == "key" else None
                if row is None:
                    what = f"data row {value}" if kind == "id" else f"global key {value!r}"
                    errors.append(
                        ItemError(
                            index,
                            "not_found",
                            f"no {what} in your organization",
                            global_key=gk,
                            item_key=key,
                        )
                    )
                elif row.id not in chosen:
                    errors.append(
                        ItemError(
                            index,
                            "not_selected",
                            f"data row {row.id} does not match the request's dataset, "
                            "metadata or media type filters",
                            global_key=row.global_key,
                            item_key=key,
                        )
                    )
                else:
                    items.append(_Item(index, key, row))
            counts, more = _join(conn, org_id, project_id, config, items)
            if not job.record(conn, start + len(part), counts, errors + more):
                return


def _rows(conn: Connection, org_id: int, column: Any, values: list[Any]) -> list[Any]:
    if not values:
        return []
    found: list[Any] = []
    wanted = list(dict.fromkeys(values))
    cols = (data_rows.c.id, data_rows.c.global_key, data_rows.c.row_data, data_rows.c.extra)
    for start in range(0, len(wanted), labels.BATCH):
        part = wanted[start : start + labels.BATCH]
        query = select(*cols).where(data_rows.c.org_id == org_id, column.in_(part))
        found += conn.execute(query).all()
    return found


def _matching(conn: Connection, org_id: int, flt: RowFilter | None, ids: list[int]) -> set[int]:
    """Which of ``ids`` pass ``flt`` (all of them without filters)."""
    if flt is None or not ids:
        return set(ids)
    row = data_rows.alias("r")
    try:
        checks = queries.row_checks(conn, org_id, flt, row.c.id)
    except queries.Empty:
        return set()
    out: set[int] = set()
    for start in range(0, len(ids), labels.BATCH):
        part = ids[start : start + labels.BATCH]
        out.update(conn.execute(select(row.c.id).where(row.c.id.in_(part), *checks)).scalars())
    return out


def _join(
    conn: Connection, org_id: int, project_id: int, config: LabelConfig, items: list[_Item]
) -> tuple[dict[str, int], list[ItemError]]:
    """Make the items' rows tasks (those whose data the config can show), and bring in the
    Label Studio annotations and predictions of the rows that are new tasks."""
    errors: list[ItemError] = []
    ready: list[_Item] = []
    for item in items:
        _data, missing = config.task_data(orjson.loads(item.row.row_data))
        if missing:
            needs = ", ".join(repr(k) for k in missing)
            errors.append(
                ItemError(
                    item.index,
                    "missing_data_keys",
                    f"data row {item.row.id} has no {needs} in its row_data; the project's "
                    f"label config shows {needs} (an object tag's value ${missing[0]})",
                    global_key=item.row.global_key,
                    item_key=item.key,
                    details={"data_row_id": item.row.id, "missing_keys": missing},
                )
            )
            continue
        ready.append(item)
    added = set(labels.add_tasks(conn, org_id, project_id, [i.row.id for i in ready]))
    counts = {"added": len(added), "existing": len(ready) - len(added)}
    annotations: list[dict[str, Any]] = []
    predictions: list[dict[str, Any]] = []
    imported: list[int] = []
    for item in ready:
        if item.row.id not in added or not item.row.extra:
            continue
        added.discard(item.row.id)  # a row named twice in one chunk comes in once
        extra = orjson.loads(item.row.extra)
        if not isinstance(extra, dict) or not ({"annotations", "predictions"} & extra.keys()):
            continue
        imported.append(item.row.id)
        base = {"org_id": org_id, "project_id": project_id, "data_row_id": item.row.id}
        for kind, out in (("annotation", annotations), ("prediction", predictions)):
            given = extra.get(kind + "s")
            if given is None:
                continue
            if not isinstance(given, list):
                errors.append(_bad(item, kind, None, f"{kind}s is not a list"))
                continue
            for n, source in enumerate(given):
                try:
                    out.append({**base, **_imported(config, kind, source)})
                except Invalid as exc:
                    errors.append(_bad(item, kind, (n, source), exc.message, exc.code))
    labels.insert_annotations(conn, annotations)
    labels.insert_predictions(conn, predictions)
    labels.mark_imported(conn, project_id, imported)
    counts["imported_annotations"] = len(annotations)
    counts["imported_predictions"] = len(predictions)
    return counts, errors


def _imported(config: LabelConfig, kind: str, source: Any) -> dict[str, Any]:
    """A Label Studio annotation or prediction as the columns it is stored with; ``Invalid``
    when it is malformed or a region does not fit the config."""
    bad = f"bad_{kind}"
    if not isinstance(source, dict):
        raise Invalid(f"the {kind} is not a JSON object", code=bad)
    result = source.get("result", [])
    config.check_regions(result)
    if kind == "prediction":
        version, score = source.get("model_version"), source.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise Invalid(f"score is not a number ({score!r})", code=bad)
        version = "" if version is None else str(version)
        if len(version) > 200:
            raise Invalid("model_version is over 200 characters", code=bad)
        return {"result": result, "model_version": version, "score": score}
    lead_time = source.get("lead_time")
    if lead_time is not None and (
        isinstance(lead_time, bool) or not isinstance(lead_time, int | float)
    ):
        raise Invalid(f"lead_time is not a number of seconds ({lead_time!r})", code=bad)
    flags = {}
    for name in ("was_cancelled", "ground_truth"):
        value = source.get(name)
        if value is not None and not isinstance(value, bool):
            raise Invalid(f"{name} is not true or false ({value!r})", code=bad)
        flags[name] = bool(value)
    return {"result": result, "lead_time": lead_time, "completed_by": None, **flags}


def _bad(
    item: _Item, kind: str, which: tuple[int, Any] | None, reason: str, code: str | None = None
) -> ItemError:
    where = f"{kind}s"
    details: dict[str, Any] = {"data_row_id": item.row.id, "kind": kind}
    if which is not None:
        n, source = which
        source_id = source.get("id") if isinstance(source, dict) else None
        where = f"{kind} {n}" + (f" (Label Studio id {source_id})" if source_id else "")
        details.update({"position": n, "source_id": source_id})
    return ItemError(
        item.index,
        code or f"bad_{kind}",
        f"data row {item.row.id}: imported {where} left out: {reason}",
        global_key=item.row.global_key,
        item_key=item.key,
        details=details,
    )


# --- reading tasks ---------------------------------------------------------------------------


@dataclass
class TaskFilter:
    """What a task listing keeps: a status, the data row filters of data row listing, and
    data row ids."""

    status: str | None = None
    rows: RowFilter = field(default_factory=RowFilter)
    data_row_ids: list[int] | None = None


# The task's columns beside the row's (whose names they share) in one result.
_TASK_COLUMNS = [
    c.label(f"task_{c.name}")
    for c in tasks.c
    if c.name not in ("project_id", "data_row_id", "org_id")
]


def _joined(org_id: int, project_id: int) -> Any:
    return (
        select(data_rows, *_TASK_COLUMNS)
        .select_from(tasks.join(data_rows, data_rows.c.id == tasks.c.data_row_id))
        .where(
            tasks.c.project_id == project_id,
            tasks.c.org_id == org_id,
            data_rows.c.org_id == org_id,
        )
    )


def page(
    conn: Connection,
    org_id: int,
    project: int | str,
    flt: TaskFilter | None = None,
    after: int | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the project's tasks in data row id order (keyset: ``after`` is the last
    data row id of the page before); the second value is the next page's cursor."""
    # A project given by id is looked up only when the page comes back empty (every query
    # is of the caller's organization's tasks): a page costs one query fewer.
    by_id = is_id(project) and 0 < int(project) <= MAX_ID
    project_id = int(project) if by_id else projects.get_id(conn, org_id, project)
    flt = flt or TaskFilter()
    if flt.status is not None and flt.status not in TASK_STATUSES:
        raise Invalid(
            f"unknown status {flt.status!r}; expected one of {', '.join(TASK_STATUSES)}",
            {"field": "status"},
        )
    if flt.data_row_ids is not None:
        if len(flt.data_row_ids) > MAX_IDS_FILTER:
            raise Invalid(f"at most {MAX_IDS_FILTER} data_row_id filters")
        # ids no row can have (the databases refuse to compare BIGINTs with them) match none
        ids = [i for i in flt.data_row_ids if 0 < i <= MAX_ROW_ID]
        flt = TaskFilter(flt.status, flt.rows, ids)
    limit = max(1, min(limit, MAX_PAGE))
    try:
        rows = conn.execute(_page_query(conn, org_id, project_id, flt, after, limit + 1)).all()
    except queries.Empty:
        rows = []
    if not rows and by_id:
        projects.get_id(conn, org_id, project_id)  # NotFound: not the caller's project
    more = len(rows) > limit
    rows = rows[:limit]
    names = queries.field_names(conn, org_id) if any(r.metadata for r in rows) else None
    now = datetime.now(UTC)
    return [_public(r, project_id, names, now) for r in rows], (rows[-1].id if more else None)


def _page_query(
    conn: Connection, org_id: int, project_id: int, flt: TaskFilter, after: int | None, limit: int
) -> Any:
    """The statement of one page, read through one index: the project's tasks (by status)
    when no data row filter is given, when ids are named, or in a small project, each row
    checked (``queries.row_checks``); else the data row filters' own index (as a data row
    page reads it, ``queries.page_ids_query``), each row probed for its task."""
    own = [tasks.c.project_id == project_id]
    if flt.status is not None:
        own.append(tasks.c.status == flt.status)
    if flt.data_row_ids is not None:
        own.append(tasks.c.data_row_id.in_(flt.data_row_ids))
    joined = _joined(org_id, project_id).order_by(tasks.c.data_row_id)
    checks: list[Any] = []
    if not queries.is_open(flt.rows):
        if flt.data_row_ids is None and _many(conn, project_id, flt.status, own):

            def is_task(row_id: Any) -> Any:
                return select(tasks.c.data_row_id).where(*own, tasks.c.data_row_id == row_id)

            ids = queries.page_ids_query(conn, org_id, flt.rows, after, limit, also=is_task)
            return joined.where(tasks.c.data_row_id.in_(ids))
        checks = queries.row_checks(conn, org_id, flt.rows, tasks.c.data_row_id)
    if after is not None:
        own.append(tasks.c.data_row_id > after)
    # The page's ids first, from the tasks' index alone (the status index covers them, in
    # id order), then their rows: as one join, SQLite was seen to walk the primary key
    # checking each task's status, and PostgreSQL to read every row of the organization.
    ids = select(tasks.c.data_row_id).where(*own, *checks)
    return joined.where(tasks.c.data_row_id.in_(ids.order_by(tasks.c.data_row_id).limit(limit)))


# Whether a project (with a status) holds PROBE_TASKS tasks or more, as last seen: only the
# speed of a listing depends on it, so a verdict is kept for a while instead of counting on
# every page.
_MANY: dict[tuple[int, str | None], tuple[bool, float]] = {}
MANY_KEPT_SECONDS = 60.0


def _many(conn: Connection, project_id: int, status: str | None, own: list[Any]) -> bool:
    now = time.monotonic()
    seen = _MANY.get((project_id, status))
    if seen is not None and seen[1] > now:
        return seen[0]
    probe = select(tasks.c.data_row_id).where(*own).limit(PROBE_TASKS).subquery()
    many = int(conn.execute(select(func.count()).select_from(probe)).scalar_one()) >= PROBE_TASKS
    if len(_MANY) > 10_000:
        _MANY.clear()
    _MANY[(project_id, status)] = (many, now + MANY_KEPT_SECONDS)
    return many


def get(conn: Connection, org_id: int, project: int | str, data_row_id: int) -> dict[str, Any]:
    """One task, by its data row's id."""
    project_id = projects.get_id(conn, org_id, project)
    row = conn.execute(
        _joined(org_id, project_id).where(tasks.c.data_row_id == data_row_id)
    ).first()
    if row is None:
        raise NotFound(f"data row {data_row_id} is no task of project {project_id}")
    names = queries.field_names(conn, org_id) if row.metadata else None
    return _public(row, project_id, names, datetime.now(UTC))


def _public(row: Any, project_id: int, names: Any, now: datetime) -> dict[str, Any]:
    """A task as the API shows it, with its data row as data row answers show it. A lease
    that ran out shows as none (anyone may be given the task)."""
    held = row.task_lease_until is not None and as_utc(row.task_lease_until) > now
    return {
        "data_row_id": row.id,
        "project_id": project_id,
        "status": row.task_status,
        "total_annotations": row.task_total_annotations,
        "cancelled_annotations": row.task_cancelled_annotations,
        "total_predictions": row.task_total_predictions,
        "lease_user_id": row.task_lease_user_id if held else None,
        "lease_until": iso(row.task_lease_until) if held else None,
        "imported_at": iso(row.task_imported_at),
        "created_at": iso(row.task_created_at),
        "updated_at": iso(row.task_updated_at),
        "data_row": queries.to_public(row, names),
    }


# --- leases ----------------------------------------------------------------------------------


def next_task(
    conn: Connection,
    org_id: int,
    project: int | str,
    user_id: int,
    lease_seconds: float,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """The caller's next task, leased to them for ``lease_seconds``: the unlabeled task they
    hold (its lease renewed), else the first unlabeled one nobody holds (or whose lease ran
    out). None when no task is left. Any member may ask."""
    project_id = projects.get_id(conn, org_id, project)
    now = now or datetime.now(UTC)
    until = now + timedelta(seconds=lease_seconds)
    open_task = and_(
        tasks.c.project_id == project_id, tasks.c.org_id == org_id, tasks.c.status == "unlabeled"
    )
    mine = tasks.c.lease_user_id == user_id
    held = conn.execute(  # through the index of leases (a few rows), never the project's
        select(tasks.c.data_row_id).where(open_task, mine).order_by(tasks.c.data_row_id).limit(1)
    ).scalar()
    if held is not None and _take(conn, open_task, held, mine, user_id, until):
        return _leased(conn, org_id, project_id, held, now)
    free = or_(tasks.c.lease_user_id.is_(None), tasks.c.lease_until < now)
    unlabeled = and_(tasks.c.project_id == project_id, tasks.c.status == "unlabeled")
    after: int | None = None
    while True:
        # A window of unlabeled tasks from the status index alone (it covers them, in id
        # order), then which of them nobody holds: a query of both at once walked the
        # primary key on SQLite, through every labeled task before the first unlabeled one.
        window = select(tasks.c.data_row_id).where(unlabeled)
        if after is not None:
            window = window.where(tasks.c.data_row_id > after)
        ids = list(conn.execute(window.order_by(tasks.c.data_row_id).limit(WINDOW)).scalars())
        if not ids:
            return None
        candidates = conn.execute(
            select(tasks.c.data_row_id)
            .where(tasks.c.project_id == project_id, tasks.c.data_row_id.in_(ids), free)
            .order_by(tasks.c.data_row_id)
        ).scalars()
        for data_row_id in list(candidates):
            if _take(conn, open_task, data_row_id, free, user_id, until):
                return _leased(conn, org_id, project_id, data_row_id, now)
        after = ids[-1]


def _take(
    conn: Connection, open_task: Any, data_row_id: int, still: Any, user_id: int, until: datetime
) -> bool:
    """The compare-and-set: lease the task to the user if it is still as it was seen."""
    taken = conn.execute(
        update(tasks)
        .where(open_task, tasks.c.data_row_id == data_row_id, still)
        .values(lease_user_id=user_id, lease_until=until)
    ).rowcount
    return bool(taken)


def _leased(
    conn: Connection, org_id: int, project_id: int, data_row_id: int, now: datetime
) -> dict[str, Any]:
    row = conn.execute(_joined(org_id, project_id).where(tasks.c.data_row_id == data_row_id)).one()
    names = queries.field_names(conn, org_id) if row.metadata else None
    return _public(row, project_id, names, now)
