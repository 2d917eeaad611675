"""``POST /storages/{storage_id}/sync``: start a sync of a source storage (or get the one
that is queued or running), or an export to a target storage (or get the queued one)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Response

from tether.api.deps import CallerDep, ConnDep, QueueDep, SettingsDep
from tether.api.errors import documented
from tether.api.models import MAX_INT, Job
from tether.sync.start import start_sync

router = APIRouter(prefix="/storages", tags=["storages"], responses=documented(401, 422))
StorageId = Annotated[int, Path(ge=1, le=MAX_INT, description="the storage's id")]


@router.post(
    "/{storage_id}/sync",
    status_code=202,
    response_model=Job,
    responses={
        200: {
            "model": Job,
            "description": "The storage's sync was queued or running already (a target: "
            "its export was queued already): that job.",
        },
        202: {"description": "A new sync job, queued."},
        **documented(404),
    },
)
def sync_storage(
    storage_id: StorageId,
    caller: CallerDep,
    conn: ConnDep,
    queue: QueueDep,
    settings: SettingsDep,
    later: BackgroundTasks,
    response: Response,
) -> dict[str, Any]:
    """Start a sync of a source storage into its dataset: a job of kind ``sync`` (poll
    ``/jobs/{id}``). A storage syncs once at a time: while its sync is queued or running,
    this answers 200 with that job instead of starting another.

    On a target storage: an export of its project's annotations, a job of kind ``export``
    (counts ``written``, ``unchanged``, ``deleted``, ``failed``) that writes the new and
    changed annotations (and, with ``can_delete_objects``, deletes the objects of deleted
    ones). While one is queued this answers 200 with it; one that runs is followed by the
    new one."""
    job, created = start_sync(
        conn, caller.org_id, storage_id, caller.user_id, parts=settings.sync_parts
    )
    if not created:
        response.status_code = 200
    if job["status"] == "queued":
        # Queued once the request's transaction has committed (a job queued twice runs once).
        later.add_task(queue.enqueue, job["id"])
    return job
