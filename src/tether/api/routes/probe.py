"""``POST /datasets/{dataset}/probe``: fill in the media attributes of a dataset's rows (a job
of kind ``probe``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Response

from tether.api.deps import CallerDep, ConnDep, QueueDep
from tether.api.errors import documented
from tether.api.models import Job
from tether.resolve.probe_job import start_probe

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=documented(401, 422))


@router.post(
    "/{dataset}/probe",
    status_code=202,
    response_model=Job,
    responses={
        200: {"model": Job, "description": "The same probe of the dataset was queued already."},
        202: {"description": "A new probe job, queued."},
        **documented(404),
    },
)
def probe_dataset(
    dataset: str,
    caller: CallerDep,
    conn: ConnDep,
    queue: QueueDep,
    later: BackgroundTasks,
    response: Response,
    force: Annotated[
        bool, Query(description="probe every row again, not only the rows that lack attributes")
    ] = False,
) -> dict[str, Any]:
    """Read the headers of the dataset's image, video, audio and PDF assets through their
    storages (ranged reads: never a whole asset) and record ``width``, ``height``,
    ``mimeType``, ``duration``, ``frameRate``, ``pageCount`` and ``size`` in their
    ``media_attributes``. Answers at once with the job (poll ``/jobs/{id}``); an asset that
    cannot be read is a per-item error of the job, and its row stays as it was. Plain
    ``http(s)://`` rows are skipped unless the operator turned ``TETHER_PROBE_HTTP_URLS``
    on."""
    job, created = start_probe(conn, caller.org_id, dataset, caller.user_id, force)
    if not created:
        response.status_code = 200
    # Queued once the request's transaction has committed (a job queued twice runs once).
    later.add_task(queue.enqueue, job["id"])
    return job
