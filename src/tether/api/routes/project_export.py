"""``GET /projects/{project}/export``: a project's tasks with their annotations and
predictions, streamed in Label Studio's JSON export shape, or converted to COCO, YOLO or
Pascal VOC by Label Studio's converter."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from tether.api.deps import CallerAloneDep, EngineDep
from tether.api.errors import documented
from tether.api.streaming import ClosingStream
from tether.db.tables import TASK_STATUSES
from tether.projects import convert, export

router = APIRouter(prefix="/projects", tags=["projects"], responses=documented(401, 422))
EXPORT_TASKS_HEADER = "X-Tether-Export-Tasks"
SKIPPED_HEADER = "X-Tether-Export-Skipped"
MEDIA_TYPES = {"json": "application/json", "ndjson": "application/x-ndjson"}
Format = Literal["json", "ndjson", "coco", "yolo", "voc"]
_TASKS = {
    "description": "how many tasks the export holds (JSON: items of the array; NDJSON: "
    "lines); fewer, or a stream that ends without its terminating chunk, means it failed",
    "schema": {"type": "integer"},
}
_SKIPPED = {
    "description": "COCO, YOLO, VOC: tasks left out because their data lack the image key",
    "schema": {"type": "integer"},
}
CONVERT_422 = (
    "COCO, YOLO and VOC: `converter_not_installed` when the server lacks Label Studio's "
    "converter (`pip install 'tether[convert]'`); `format_unsupported` when the project's "
    "label config makes nothing the format holds; `conversion_failed` when the converter "
    "stops on a region it cannot read (a polygon without points)."
)


@router.get(
    "/{project}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/json": {},
                "application/x-ndjson": {},
                "application/zip": {},
            },
            "description": "`json`: one array, a task a line; `ndjson`: a task a line; "
            "`coco`: the COCO JSON document; `yolo`, `voc`: a zip.",
            "headers": {
                EXPORT_TASKS_HEADER: _TASKS,
                SKIPPED_HEADER: _SKIPPED,
                "Content-Disposition": {
                    "description": 'a file: `attachment; filename="project-<id>.<format>"` '
                    "(COCO: `-coco.json`; YOLO, VOC: `-yolo.zip`, `-voc.zip`)",
                    "schema": {"type": "string"},
                },
            },
        },
        **documented(404, e422=CONVERT_422),
    },
)
def export_project(
    project: str,
    caller: CallerAloneDep,
    engine: EngineDep,
    format: Annotated[Format, Query(description="what to write")] = "json",
    status: Annotated[
        list[str] | None,
        Query(
            description="only tasks of these statuses (repeatable: "
            f"{', '.join(TASK_STATUSES)}); when not given, all for json and ndjson, "
            "`labeled` for coco, yolo and voc",
        ),
    ] = None,
) -> StreamingResponse:
    """Every task of the project (by id or name) with its annotations and predictions, in
    data row id order, in Label Studio's JSON export shape: a task's `id` is its data row's
    id and its `data` keeps the stored URIs (never resolved URLs).

    A consistent snapshot: annotations written while it streams do not change it. The
    `X-Tether-Export-Tasks` header says how many tasks it holds; a stream that fails part
    way ends without its terminating chunk, so a short one is never taken for a whole one.

    `coco`, `yolo` and `voc` run Label Studio's converter on that export (the server must
    have it: `pip install 'tether[convert]'`). It never fetches an image: sizes come from
    the regions' `original_width` and `original_height`. COCO is its `result.json` (a
    `bbox` in pixels, polygons as `segmentation`); YOLO a zip of `classes.txt`,
    `notes.json` and `labels/<image name>.txt`; VOC a zip of `Annotations/<image name>.xml`.
    They hold labeled tasks unless `status` says otherwise (an image not labeled yet is no
    image without objects). Skipped annotations and predictions are not in them, and each
    annotation of a task is an item of its own, as in Label Studio."""
    if not status and format not in MEDIA_TYPES:
        status = ["labeled"]  # an unlabeled image is no negative example
    spliced = format in MEDIA_TYPES  # the converter reads the data, so it gets it parsed
    opened = export.open_export(engine, caller.org_id, project, statuses=status, spliced=spliced)
    name = f"project-{opened.project['id']}"
    if format in MEDIA_TYPES:
        return ClosingStream(
            export.chunks(opened, format),
            opened.close,
            media_type=MEDIA_TYPES[format],
            headers={
                EXPORT_TASKS_HEADER: str(opened.tasks),
                "Content-Disposition": f'attachment; filename="{name}.{format}"',
            },
        )
    made = convert.convert(opened, format)
    return ClosingStream(
        made.chunks(),
        made.close,
        media_type=made.media_type,
        headers={
            EXPORT_TASKS_HEADER: str(made.tasks),
            SKIPPED_HEADER: str(made.skipped),
            "Content-Length": str(made.path.stat().st_size),
            "Content-Disposition": f'attachment; filename="{made.filename}"',
        },
    )
