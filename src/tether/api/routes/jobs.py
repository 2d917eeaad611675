from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tether.api.deps import CallerDep, ConnDep
from tether.api.errors import documented
from tether.api.models import MAX_INT, Job, JobErrorPage, JobList
from tether.jobs import service as jobs

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=documented(401, 422))


@router.get("", response_model=JobList)
def list_jobs(
    caller: CallerDep, conn: ConnDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    return {"items": jobs.list_recent(conn, caller.org_id, limit)}


@router.get("/{job_id}", response_model=Job, responses=documented(404))
def get_job(job_id: str, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return jobs.get(conn, caller.org_id, job_id)


@router.get("/{job_id}/errors", response_model=JobErrorPage, responses=documented(404))
def job_errors(
    job_id: str,
    caller: CallerDep,
    conn: ConnDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
    limit: Annotated[int, Query(ge=1, le=jobs.MAX_ERRORS_PAGE)] = 100,
) -> dict[str, Any]:
    """Per-item errors in item order, a page at a time."""
    items, cursor = jobs.errors(conn, caller.org_id, job_id, after, limit)
    return {"items": items, "next_cursor": cursor}


@router.post(
    "/{job_id}/cancel",
    response_model=Job,
    responses=documented(404, 409, e409="The job has finished already."),
)
def cancel_job(job_id: str, caller: CallerDep, conn: ConnDep) -> dict[str, Any]:
    return jobs.cancel(conn, caller.org_id, job_id)
