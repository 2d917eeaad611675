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
    caller: CallerDep,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=jobs.MAX_JOBS_PAGE)] = 50,
    after: Annotated[
        str | None, Query(max_length=32, description="the next_cursor of the page before")
    ] = None,
    kind: Annotated[str | None, Query(max_length=32, description="import, ...")] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    dataset_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> dict[str, Any]:
    """Jobs newest first, a page at a time (``next_cursor`` -> ``after``)."""
    flt = jobs.JobFilter(kind=kind, status=status, dataset_id=dataset_id)
    items, cursor = jobs.page(conn, caller.org_id, flt, after, limit)
    return {"items": items, "next_cursor": cursor}


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
    """A queued job is canceled at once; a running one stops after the chunk being written
    (``cancel_requested`` until then) and then shows ``canceled``, with what was done
    counted and its message saying what stayed."""
    return jobs.cancel(conn, caller.org_id, job_id)
