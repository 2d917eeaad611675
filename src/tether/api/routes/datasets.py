from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from tether.api import params
from tether.api.deps import CallerDep, ConnDep, EngineDep, QueueDep, SettingsDep
from tether.api.errors import documented
from tether.api.models import Dataset, DatasetDeleted, DatasetIn, DatasetList, DatasetPatch, Job
from tether.api.uploads import receive_upload
from tether.catalog import data_rows, datasets
from tether.errors import Invalid
from tether.imports import formats

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=documented(401, 422))
TAKEN = "A dataset of that name exists already."


@router.post(
    "", status_code=201, response_model=Dataset, responses=documented(409, 413, e409=TAKEN)
)
def create_dataset(body: DatasetIn, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return datasets.create(conn, caller.org_id, body.name, body.description, caller.user_id)


@router.get("", response_model=DatasetList)
def list_datasets(caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return {"items": datasets.list_all(conn, caller.org_id)}


@router.get("/{dataset}", response_model=Dataset, responses=documented(404))
def get_dataset(
    dataset: str, caller: CallerDep, conn: ConnDep, with_count: bool = False
) -> dict[str, Any]:
    """By id or by name."""
    return datasets.get(conn, caller.org_id, dataset, with_count=with_count)


@router.patch("/{dataset}", response_model=Dataset, responses=documented(404, 409, 413, e409=TAKEN))
def update_dataset(
    dataset: str, body: DatasetPatch, caller: CallerDep, conn: ConnDep
) -> dict[str, Any]:
    return datasets.rename(conn, caller.org_id, dataset, body.name, body.description)


@router.delete("/{dataset}", response_model=DatasetDeleted, responses=documented(404))
def delete_dataset(dataset: str, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    """Delete a dataset with all its data rows."""
    return {"deleted_rows": datasets.remove(conn, caller.org_id, dataset)}


@router.post(
    "/{dataset}/data-rows", status_code=202, response_model=Job, responses=documented(404, 413)
)
async def create_data_rows(
    dataset: str,
    request: Request,
    caller: CallerDep,
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
        200: {"content": {"application/x-ndjson": {}}, "description": "NDJSON, a row a line"},
        **documented(404),
    },
)
def export_dataset(dataset: str, caller: CallerDep, engine: EngineDep) -> StreamingResponse:
    """Every row of the dataset, every field, one JSON object a line (imports again as is)."""
    with engine.connect() as conn:
        flt = data_rows.dataset_filter(conn, caller.org_id, dataset)
    return StreamingResponse(
        _export_lines(engine, caller.org_id, flt), media_type="application/x-ndjson"
    )


def _export_lines(engine: Any, org_id: int, flt: data_rows.RowFilter) -> Iterator[bytes]:
    after: int | None = None
    while True:
        with engine.connect() as conn:
            rows, after = data_rows.page(conn, org_id, flt, after, 1000)
        yield b"".join(orjson.dumps(r) + b"\n" for r in rows)
        if after is None:
            return
