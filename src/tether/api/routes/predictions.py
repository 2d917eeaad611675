"""Predictions of a project's tasks: a bulk import (a ``predictions`` job), listed by task,
deleted by id (``projects.predictions``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from tether.api import params
from tether.api.deps import CallerAloneDep, CallerDep, ConnDep, EngineDep, QueueDep, SettingsDep
from tether.api.errors import documented
from tether.api.models import MAX_BIGINT, MAX_INT, Job, PredictionList
from tether.api.uploads import stage_body
from tether.errors import Invalid
from tether.projects import predictions

router = APIRouter(tags=["predictions"], responses=documented(401, 422))
TaskPath = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="the task's data row id")]


@router.post(
    "/projects/{project}/predictions",
    status_code=202,
    response_model=Job,
    responses=documented(404, 413),
)
async def import_predictions(
    project: str,
    request: Request,
    caller: CallerAloneDep,
    engine: EngineDep,
    settings: SettingsDep,
    queue: QueueDep,
    format: Annotated[
        str | None,
        Query(
            description="json (an array, or objects one after another) or ndjson; detected "
            "when not given",
            json_schema_extra=params.one_of(predictions.FORMATS),
        ),
    ] = None,
    filename: str | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """Bulk import predictions from a JSON array or NDJSON body (or a multipart file).

    Items: `{"data_row_id" | "global_key", "result", "model_version", "score"}`, Label
    Studio's predictions (`task` names the task) or its tasks with `predictions: [...]`
    (`id` names the task). Answers at once with a job (kind `predictions`; counts `created`,
    `failed`); poll `/jobs/{id}`, per-item errors at `/jobs/{id}/errors`. A repeated
    `Idempotency-Key` returns the first job."""
    if format is not None and format not in predictions.FORMATS:
        raise Invalid(f"unknown format {format!r}; expected json or ndjson")
    target = await run_in_threadpool(predictions.resolve_project, engine, caller.org_id, project)
    path, sent_name, digest = await stage_body(request, settings)
    return await run_in_threadpool(
        predictions.submit_predictions,
        engine,
        queue.enqueue,
        caller.org_id,
        caller.user_id,
        target,
        path,
        digest,
        {"format": format, "filename": filename or sent_name},
        idempotency_key,
    )


@router.get(
    "/projects/{project}/tasks/{data_row_id}/predictions",
    response_model=PredictionList,
    responses=documented(
        404, e404="No such project in the caller's organization, or the row is no task of it."
    ),
)
def task_predictions(
    project: str, data_row_id: TaskPath, caller: CallerDep, conn: ConnDep
) -> dict[str, Any]:
    """The task's predictions, oldest first."""
    return {"items": predictions.of_task(conn, caller.org_id, project, data_row_id)}


@router.delete(
    "/predictions/{prediction_id}",
    status_code=204,
    response_class=Response,
    responses=documented(404),
)
def delete_prediction(
    prediction_id: Annotated[int, Path(ge=1, le=MAX_INT)], caller: CallerDep, conn: ConnDep
) -> Response:
    """Delete one prediction; its task is recounted."""
    predictions.remove(conn, caller.org_id, prediction_id)
    return Response(status_code=204)
