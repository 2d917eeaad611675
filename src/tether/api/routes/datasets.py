from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.responses import StreamingResponse

from tether.api import params
from tether.api.deps import CallerAloneDep, CallerDep, ConnDep, EngineDep, QueueDep, SettingsDep
from tether.api.errors import documented
from tether.api.idempotency import OnceDep
from tether.api.models import (
    Dataset,
    DatasetDeletion,
    DatasetIn,
    DatasetList,
    DatasetPatch,
    Job,
)
from tether.api.streaming import ClosingStream
from tether.api.uploads import receive_upload
from tether.catalog import datasets, deletion
from tether.catalog import export as export_rows
from tether.errors import Invalid
from tether.imports import formats

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=documented(401, 422))
EXPORT_ROWS_HEADER = "X-Tether-Export-Rows"
TAKEN = "A dataset of that name exists already."


@router.post(
    "", status_code=201, response_model=Dataset, responses=documented(409, 413, e409=TAKEN)
)
def create_dataset(
    body: DatasetIn, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    return once(
        conn,
        lambda: datasets.create(conn, caller.org_id, body.name, body.description, caller.user_id),
    )


@router.get("", response_model=DatasetList)
def list_datasets(
    caller: CallerDep,
    conn: ConnDep,
    name: Annotated[
        str | None, Query(description="only the dataset of this name (none or one item)")
    ] = None,
) -> dict[str, Any]:
    if name is not None:
        return {"items": datasets.find_by_name(conn, caller.org_id, name)}
    return {"items": datasets.list_all(conn, caller.org_id)}


@router.get("/{dataset}", response_model=Dataset, responses=documented(404))
def get_dataset(
    dataset: str, caller: CallerDep, conn: ConnDep, with_count: bool = False
) -> dict[str, Any]:
    """By id (a path of digits is always an id), or by a name that is not all digits; for any
    name, `GET /datasets?name=...`."""
    return datasets.get(conn, caller.org_id, dataset, with_count=with_count)


@router.patch("/{dataset}", response_model=Dataset, responses=documented(404, 409, 413, e409=TAKEN))
def update_dataset(
    dataset: str, body: DatasetPatch, caller: CallerDep, conn: ConnDep, once: OnceDep
) -> dict[str, Any]:
    return once(
        conn, lambda: datasets.rename(conn, caller.org_id, dataset, body.name, body.description)
    )


@router.delete(
    "/{dataset}", status_code=202, response_model=DatasetDeletion, responses=documented(403, 404)
)
def delete_dataset(
    dataset: str,
    caller: CallerDep,
    conn: ConnDep,
    queue: QueueDep,
    once: OnceDep,
    later: BackgroundTasks,
) -> dict[str, Any]:
    """Delete a dataset with all its data rows (admins only). It leaves every listing and
    lookup at once; its rows go in a ``delete_dataset`` job (answered here; poll
    ``/jobs/{id}``)."""
    answer = once(
        conn, lambda: deletion.start(conn, caller.org_id, dataset, caller.user_id, role=caller.role)
    )
    # Queued once the request's transaction has committed (a repeat finds the job claimed or
    # finished and leaves it).
    later.add_task(queue.enqueue, answer["id"])
    return answer


@router.post(
    "/{dataset}/data-rows", status_code=202, response_model=Job, responses=documented(404, 413)
)
async def create_data_rows(
    dataset: str,
    request: Request,
    caller: CallerAloneDep,
    engine: EngineDep,
    settings: SettingsDep,
    queue: QueueDep,
    upsert: bool = False,
    format: Annotated[
        str | None,
        Query(
            description="the file's container (json, ndjson, csv, tsv, txt), its kind "
            "(labelbox, label_studio) or both (csv/labelbox); detected when not given",
            json_schema_extra=params.one_of(formats.CONTAINERS),
        ),
    ] = None,
    media_type: Annotated[str | None, params.MEDIA_TYPE_QUERY] = None,
    filename: str | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """Bulk create from a JSON array, NDJSON, CSV, TSV or text body (or a multipart file).

    Answers at once with a job; poll ``/jobs/{id}``. A repeated ``Idempotency-Key`` returns
    the first job and creates nothing.
    """
    if format is not None and format not in formats.CONTAINERS:
        raise Invalid(
            f"unknown format {format!r}; expected one of " + ", ".join(formats.CONTAINERS)
        )
    return await receive_upload(
        request,
        engine,
        settings,
        queue,
        caller,
        dataset,
        idempotency_key,
        {
            "upsert": upsert,
            "format": format,
            "filename": filename,
            "media_type": params.media_type(media_type),
        },
    )


@router.get(
    "/{dataset}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "NDJSON, a row a line",
            "headers": {
                EXPORT_ROWS_HEADER: {
                    "description": "how many lines the stream holds; fewer, or a stream "
                    "that ends without its terminating chunk, means the export failed",
                    "schema": {"type": "integer"},
                }
            },
        },
        **documented(404),
    },
)
def export_dataset(dataset: str, caller: CallerAloneDep, engine: EngineDep) -> StreamingResponse:
    """Every row of the dataset, every field, one JSON object a line (imports again as is).

    A consistent snapshot: rows written or deleted while it streams do not change it. The
    ``X-Tether-Export-Rows`` header says how many lines it holds; an export that fails part
    way ends the response without its terminating chunk (the client sees an incomplete
    read), so a short stream is never taken for a whole one."""
    export = export_rows.open_export(engine, caller.org_id, dataset)
    return ClosingStream(
        export.chunks,
        export.close,
        media_type="application/x-ndjson",
        headers={EXPORT_ROWS_HEADER: str(export.rows)},
    )
