"""Annotations of a project's tasks: made on a task, listed by task or by project, read,
changed and deleted by id (``projects.annotations``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from tether.api.deps import CallerDep, ConnDep
from tether.api.errors import documented
from tether.api.idempotency import OnceDep
from tether.api.models import (
    MAX_BIGINT,
    MAX_INT,
    Annotation,
    AnnotationIn,
    AnnotationList,
    AnnotationPage,
    AnnotationPatch,
)
from tether.api.routes.data_rows import _utc  # one rule for times in queries
from tether.errors import Invalid
from tether.projects import annotations as service
from tether.projects.annotations import AnnotationFilter

router = APIRouter(tags=["annotations"], responses=documented(401, 422))
TaskPath = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="the task's data row id")]
AnnotationId = Annotated[int, Path(ge=1, le=MAX_INT)]
NO_TASK = "No such project in the caller's organization, or the row is no task of it."
REGIONS = (
    "A region that does not fit the project's label config is `region_mismatch` "
    "(`details.index`: the region's place in `result`)."
)


@router.post(
    "/projects/{project}/tasks/{data_row_id}/annotations",
    status_code=201,
    response_model=Annotation,
    responses=documented(404, 413, e404=NO_TASK, e422=REGIONS),
)
def create_annotation(
    project: str,
    data_row_id: TaskPath,
    body: AnnotationIn,
    caller: CallerDep,
    conn: ConnDep,
    once: OnceDep,
) -> dict[str, Any]:
    """A new annotation of the task by the caller. The task's counts and status follow, and
    the caller's next-task lease on it ends."""
    return once(
        conn,
        lambda: service.create(
            conn,
            caller.org_id,
            project,
            data_row_id,
            caller.user_id,
            body.result,
            body.lead_time,
            body.was_cancelled,
            body.ground_truth,
            body.parent_prediction,
        ),
    )


@router.get(
    "/projects/{project}/tasks/{data_row_id}/annotations",
    response_model=AnnotationList,
    responses=documented(404, e404=NO_TASK),
)
def task_annotations(
    project: str, data_row_id: TaskPath, caller: CallerDep, conn: ConnDep
) -> dict[str, Any]:
    """The task's annotations, oldest first."""
    return {"items": service.of_task(conn, caller.org_id, project, data_row_id)}


@router.get(
    "/projects/{project}/annotations",
    response_model=AnnotationPage,
    responses=documented(404),
)
def project_annotations(
    project: str,
    caller: CallerDep,
    conn: ConnDep,
    data_row_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    completed_by: Annotated[int | None, Query(ge=1, le=MAX_INT, description="a user id")] = None,
    was_cancelled: Annotated[bool | None, Query(description="true: skips only")] = None,
    ground_truth: bool | None = None,
    updated_after: Annotated[
        datetime | None, Query(description="changed after this time (ISO 8601; naive is UTC)")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_INT, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
) -> dict[str, Any]:
    """The project's annotations in id order, one keyset page at a time."""
    flt = AnnotationFilter(
        data_row_id, completed_by, was_cancelled, ground_truth, _utc(updated_after)
    )
    items, cursor = service.page(conn, caller.org_id, project, flt, after, limit)
    return {"items": items, "next_cursor": cursor}


@router.get("/annotations/{annotation_id}", response_model=Annotation, responses=documented(404))
def get_annotation(annotation_id: AnnotationId, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return service.get(conn, caller.org_id, annotation_id)


@router.patch(
    "/annotations/{annotation_id}",
    response_model=Annotation,
    responses=documented(
        404,
        409,
        413,
        e409="`version_mismatch`: `version` was given and the annotation has another one "
        "now (`details.version`).",
        e422=REGIONS,
    ),
)
def update_annotation(
    annotation_id: AnnotationId,
    body: AnnotationPatch,
    caller: CallerDep,
    conn: ConnDep,
    once: OnceDep,
) -> dict[str, Any]:
    """Change the result, lead time, skip or ground-truth flag: the version grows by one and
    `updated_by` is the caller. With `version`, only if the annotation is still at it."""
    changes = {k: getattr(body, k) for k in body.model_fields_set if k != "version"}
    for name in ("result", "was_cancelled", "ground_truth"):
        if name in changes and changes[name] is None:
            raise Invalid(f"{name} cannot be null", {"field": name})
    return once(
        conn,
        lambda: service.update(
            conn, caller.org_id, annotation_id, caller.user_id, changes, body.version
        ),
    )


@router.delete(
    "/annotations/{annotation_id}",
    status_code=204,
    response_class=Response,
    responses=documented(404),
)
def delete_annotation(
    annotation_id: AnnotationId, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> Response:
    """Delete the annotation; its task is recounted (unlabeled again if it was the last)."""
    once(conn, lambda: service.remove(conn, caller.org_id, annotation_id))
    return Response(status_code=204)
