"""Annotations: what labelers make on a project's tasks, in Label Studio's shape
(``shapes.annotation``) with a ``version`` that grows by one on every edit.

Every region of a result must fit the project's label config (its ``from_name`` a control
tag, its ``to_name`` an object tag that control labels, its ``type`` one the control makes):
a region that does not is refused (``region_mismatch``, naming its index), so stored
annotations always fit their project. An annotation belongs to a task of the project; a row
that is not one is not found. Any member may create, change and delete annotations.

Each write is one function here (``create``, ``update``, ``remove``), and each ends in
``changed``: what must follow any change of an annotation (a project's auto-export) goes
there. Saving an annotation (create or update) also gives up the saver's next-task lease
on its task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from tether.catalog.datasets import MAX_ID
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import predictions as prediction_rows
from tether.db.tables import tasks
from tether.errors import Conflict, Invalid, NotFound
from tether.jobs import service as jobs
from tether.projects import labels, projects, shapes, targets
from tether.projects.label_config import LabelConfig

MAX_PAGE = 1000
MAX_BIGINT = 2**63 - 1


@dataclass
class AnnotationFilter:
    data_row_id: int | None = None
    completed_by: int | None = None
    was_cancelled: bool | None = None
    ground_truth: bool | None = None
    updated_after: datetime | None = None  # aware UTC


def public(row: Any) -> dict[str, Any]:
    """An annotation as the API shows it: Label Studio's shape (``task`` is the data row's
    id), with ``data_row_id`` and ``version``."""
    return {**shapes.annotation(row), "data_row_id": row.data_row_id, "version": row.version}


def create(
    conn: Connection,
    org_id: int,
    project: int | str,
    data_row_id: int,
    user_id: int | None,
    result: Any,
    lead_time: float | None = None,
    was_cancelled: bool = False,
    ground_truth: bool = False,
    parent_prediction: int | None = None,
) -> dict[str, Any]:
    """A new annotation of the task by ``user_id``, started from the task's prediction
    ``parent_prediction`` if given. ``NotFound`` when the project is not the organization's
    or the row is no task of it; ``Invalid`` when ``parent_prediction`` is no prediction of
    the task, and (``region_mismatch``) when a region does not fit the config. A skip is
    ``was_cancelled`` (its result is usually empty)."""
    project_id = projects.get_id(conn, org_id, project)
    config = projects.config_of(conn, org_id, project_id)
    _require_task(conn, project_id, data_row_id)
    _check(config, result, lead_time)
    if parent_prediction is not None:
        _require_prediction(conn, project_id, data_row_id, parent_prediction)
    (new_id,) = labels.insert_annotations(
        conn,
        [
            {
                "org_id": org_id,
                "project_id": project_id,
                "data_row_id": data_row_id,
                "result": result,
                "lead_time": lead_time,
                "was_cancelled": bool(was_cancelled),
                "ground_truth": bool(ground_truth),
                "completed_by": user_id,
                "updated_by": user_id,
                "parent_prediction": parent_prediction,
            }
        ],
    )
    labels.release_lease(conn, project_id, data_row_id, user_id)
    row = _row(conn, org_id, new_id)
    changed(conn, org_id, row)
    return public(row)


def get(conn: Connection, org_id: int, annotation_id: int) -> dict[str, Any]:
    return public(_row(conn, org_id, annotation_id))


def of_task(
    conn: Connection, org_id: int, project: int | str, data_row_id: int
) -> list[dict[str, Any]]:
    """The task's annotations, oldest first (``NotFound`` for a row that is no task)."""
    project_id = projects.get_id(conn, org_id, project)
    _require_task(conn, project_id, data_row_id)
    a = annotation_rows
    rows = conn.execute(
        select(a)
        .where(a.c.project_id == project_id, a.c.data_row_id == data_row_id)
        .order_by(a.c.id)
    )
    return [public(r) for r in rows]


def page(
    conn: Connection,
    org_id: int,
    project: int | str,
    flt: AnnotationFilter | None = None,
    after: int | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int | None]:
    """The project's annotations by id, a keyset page at a time: ``after`` is the last id
    of the page before; the second value is the next page's cursor (None on the last)."""
    project_id = projects.get_id(conn, org_id, project)
    flt = flt or AnnotationFilter()
    limit = max(1, min(limit, MAX_PAGE))
    a = annotation_rows
    query = select(a).where(a.c.project_id == project_id, a.c.org_id == org_id)
    if after is not None:
        query = query.where(a.c.id > after)
    for column, value in (
        (a.c.data_row_id, flt.data_row_id),
        (a.c.completed_by, flt.completed_by),
        (a.c.was_cancelled, flt.was_cancelled),
        (a.c.ground_truth, flt.ground_truth),
    ):
        if value is not None:
            query = query.where(column == value)
    if flt.updated_after is not None:
        query = query.where(a.c.updated_at > flt.updated_after)
    rows = conn.execute(query.order_by(a.c.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [public(r) for r in rows], (int(rows[-1].id) if more else None)


def update(
    conn: Connection,
    org_id: int,
    annotation_id: int,
    user_id: int | None,
    changes: dict[str, Any],
    version: int | None = None,
) -> dict[str, Any]:
    """Change ``result``, ``lead_time``, ``was_cancelled`` or ``ground_truth`` (the keys of
    ``changes``); the version grows by one and ``updated_by`` becomes ``user_id``. With
    ``version``, only if the annotation still has it: else ``Conflict``
    (``version_mismatch``), so an edit made on a stale copy never overwrites a newer one."""
    allowed = {"result", "lead_time", "was_cancelled", "ground_truth"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise Invalid(f"an annotation has no field {unknown[0]!r} to change")
    current = _row(conn, org_id, annotation_id)
    if not changes:  # nothing to change: no new version
        if version is not None and version != current.version:
            raise _stale(annotation_id, current.version, version)
        return public(current)
    if "result" in changes or "lead_time" in changes:
        config = projects.config_of(conn, org_id, current.project_id)
        _check(
            config,
            changes.get("result", []),
            changes.get("lead_time"),
        )
    for flag in ("was_cancelled", "ground_truth"):
        if flag in changes:
            changes[flag] = bool(changes[flag])
    row = labels.update_annotation(
        conn, org_id, annotation_id, {**changes, "updated_by": user_id}, version
    )
    if row is None:
        now = _row(conn, org_id, annotation_id)  # NotFound if it went meanwhile
        raise _stale(annotation_id, now.version, version)
    labels.release_lease(conn, row.project_id, row.data_row_id, user_id)
    changed(conn, org_id, row)
    return public(row)


def remove(conn: Connection, org_id: int, annotation_id: int) -> None:
    """Delete the annotation; its task is recounted (``unlabeled`` again without others)."""
    row = labels.delete_annotation(conn, org_id, annotation_id)
    if row is None:
        raise NotFound(f"no annotation with id {annotation_id}")
    changed(conn, org_id, row, deleted=True)


def changed(conn: Connection, org_id: int, row: Any, deleted: bool = False) -> None:
    """Called by every annotation write, in its transaction, with the annotation as it is
    now (or was, ``deleted``): an export to each ``auto_export`` target storage of the
    project is queued (one cheap insert, none when one is queued already), to run once the
    transaction commits."""
    jobs.enqueue_after_commit(conn, targets.queue_auto_exports(conn, org_id, row.project_id))


def _stale(annotation_id: int, current: int, given: int | None) -> Conflict:
    return Conflict(
        f"annotation {annotation_id} is at version {current}, not {given}: it changed since "
        "it was read; read it again and redo the change",
        {"annotation_id": annotation_id, "version": current},
        code="version_mismatch",
    )


def _row(conn: Connection, org_id: int, annotation_id: int) -> Any:
    row = None
    if 0 < annotation_id <= MAX_ID:
        a = annotation_rows
        row = conn.execute(select(a).where(a.c.id == annotation_id, a.c.org_id == org_id)).first()
    if row is None:
        raise NotFound(f"no annotation with id {annotation_id}")
    return row


def _require_prediction(
    conn: Connection, project_id: int, data_row_id: int, prediction_id: int
) -> None:
    found = conn.execute(
        select(prediction_rows.c.id).where(
            prediction_rows.c.id == prediction_id,
            prediction_rows.c.project_id == project_id,
            prediction_rows.c.data_row_id == data_row_id,
        )
    ).first()
    if found is None:
        raise Invalid(
            f"prediction {prediction_id} is no prediction of task {data_row_id}",
            {"parent_prediction": prediction_id},
        )


def _require_task(conn: Connection, project_id: int, data_row_id: int) -> None:
    found = None
    if 0 < data_row_id <= MAX_BIGINT:
        found = conn.execute(
            select(tasks.c.data_row_id).where(
                tasks.c.project_id == project_id, tasks.c.data_row_id == data_row_id
            )
        ).first()
    if found is None:
        raise NotFound(
            f"data row {data_row_id} is no task of project {project_id}",
            {"data_row_id": data_row_id},
        )


def _check(config: LabelConfig, result: Any, lead_time: Any) -> None:
    config.check_regions(result)
    if lead_time is not None and (
        isinstance(lead_time, bool)
        or not isinstance(lead_time, int | float)
        or not math.isfinite(lead_time)
        or lead_time < 0
    ):
        raise Invalid(
            f"lead_time is seconds spent (a number of 0 or more), not {lead_time!r}",
            {"field": "lead_time"},
        )
