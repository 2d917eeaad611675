"""A project's tasks: adding rows (an ``add_tasks`` job), listing and reading tasks, and
``next-task`` for annotators."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, BackgroundTasks, Path, Query, Response

from tether.api.deps import CallerDep, ConnDep, QueueDep, SettingsDep
from tether.api.errors import documented
from tether.api.idempotency import OnceDep
from tether.api.models import MAX_BIGINT, AddTasksIn, Job, Task, TaskPage
from tether.api.routes.data_rows import (
    FilterDep,
    ResolveQuery,
    parse_metadata_filters,
    with_resolved,
)
from tether.errors import NotFound
from tether.projects import tasks

router = APIRouter(prefix="/projects", tags=["tasks"], responses=documented(401, 422))
NO_TASK = (
    "Or `no_task`: no unlabeled task is left that another annotator does not hold (the "
    "labeling is done, or the rest is held)."
)


@router.post(
    "/{project}/tasks",
    status_code=202,
    response_model=Job,
    responses=documented(404, 413, e404="No such project or dataset."),
)
def add_tasks(
    project: str,
    body: AddTasksIn,
    caller: CallerDep,
    conn: ConnDep,
    queue: QueueDep,
    once: OnceDep,
    later: BackgroundTasks,
) -> dict[str, Any]:
    """Add data rows to the project as tasks: an `add_tasks` job (answered here; poll
    `/jobs/{id}`). Its counts: `added`, `existing` (a task already: nothing changes),
    `imported_annotations`, `imported_predictions` (a Label Studio task's own, brought in
    when its row joins) and `failed`. Rows that cannot join are per-item errors of the job:
    `not_found` (unknown, or another organization's), `not_selected` (a named row the
    filters leave out), `missing_data_keys` (its data lacks a key the label config shows);
    an imported annotation or prediction that does not fit the config is left out
    (`region_mismatch`, `bad_annotation`, `bad_prediction`). A repeated `Idempotency-Key`
    returns the first job."""
    job = once(
        conn,
        lambda: tasks.start(
            conn,
            caller.org_id,
            project,
            dataset=body.dataset,
            metadata=parse_metadata_filters(body.metadata, None),
            media_type=body.media_type,
            data_row_ids=body.data_row_ids,
            global_keys=body.global_keys,
            user_id=caller.user_id,
        ),
    )
    # Queued once the request's transaction has committed (a repeat finds the job claimed or
    # finished and leaves it).
    later.add_task(queue.enqueue, job["id"])
    return job


@router.get("/{project}/tasks", response_model=TaskPage, responses=documented(404))
def list_tasks(
    project: str,
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    flt: FilterDep,
    status: Annotated[
        str | None,
        Query(
            description="unlabeled, labeled or skipped",
            json_schema_extra={"enum": ["unlabeled", "labeled", "skipped"]},
        ),
    ] = None,
    data_row_id: Annotated[
        list[int],
        Query(
            description=f"only these data rows' tasks (repeatable, at most {tasks.MAX_IDS_FILTER})",
            json_schema_extra={"maxItems": tasks.MAX_IDS_FILTER},
        ),
    ] = [],  # noqa: B006
    after: Annotated[
        int | None, Query(ge=0, le=MAX_BIGINT, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=tasks.MAX_PAGE)] = 100,
    resolve: ResolveQuery = False,
) -> Response:
    """The project's tasks in data row id order, one keyset page at a time. The data row
    filters are those of `GET /data-rows` (`dataset_id`, `media_type`, `metadata`,
    `global_key`, ...)."""
    chosen = tasks.TaskFilter(status, flt, data_row_id or None)
    items, cursor = tasks.page(conn, caller.org_id, project, chosen, after, limit)
    if resolve:
        with_resolved(conn, settings, caller.org_id, [t["data_row"] for t in items])
    # Tasks are plain JSON already: skip re-validating them against the response model.
    return Response(
        orjson.dumps({"items": items, "next_cursor": cursor}), media_type="application/json"
    )


@router.get(
    "/{project}/tasks/{data_row_id}",
    response_model=Task,
    response_model_exclude_unset=True,
    responses=documented(404, e404="No such project, or the row is no task of it."),
)
def get_task(
    project: str,
    data_row_id: Annotated[int, Path(ge=1, le=MAX_BIGINT, description="the data row's id")],
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    resolve: ResolveQuery = False,
) -> dict[str, Any]:
    task = tasks.get(conn, caller.org_id, project, data_row_id)
    if resolve:
        with_resolved(conn, settings, caller.org_id, [task["data_row"]])
    return task


@router.get(
    "/{project}/next-task",
    response_model=Task,
    response_model_exclude_unset=True,
    responses=documented(404, e404=NO_TASK),
)
def next_task(
    project: str,
    caller: CallerDep,
    conn: ConnDep,
    settings: SettingsDep,
    resolve: ResolveQuery = False,
) -> dict[str, Any]:
    """The caller's next task to label, leased to them for `TETHER_TASK_LEASE_SECONDS`
    (`lease_user_id`, `lease_until`): the unlabeled task they hold (its lease renewed), else
    the first unlabeled task nobody else holds. Two annotators asking at once never get the
    same task; a lease that ran out lets another annotator have it. No task left: 404
    `no_task`, which a labeling page shows as "all done"."""
    task = tasks.next_task(
        conn, caller.org_id, project, caller.user_id, settings.task_lease_seconds
    )
    if task is None:
        raise NotFound("no unlabeled task is left for you in this project", code="no_task")
    if resolve:
        with_resolved(conn, settings, caller.org_id, [task["data_row"]])
    return task
