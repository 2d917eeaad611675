"""``tether jobs``: list, show, errors, cancel and wait for the organization's jobs."""

from __future__ import annotations

import itertools
from typing import Annotated

import orjson
import typer

from tether.cli.common import (
    EXIT_CODES_HELP,
    client,
    console,
    exit_code,
    plain,
    print_json,
    wait,
)
from tether.sdk import Job

app = typer.Typer(
    help="Imports and other jobs: list, show, errors, cancel, wait.", no_args_is_help=True
)


@app.command("list")
def jobs_list(
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 20,
) -> None:
    """One line a job: id, kind, status, dataset id, done/total, failed, message."""
    with client() as sdk:
        for job in itertools.islice(sdk.iter_jobs(page_size=min(limit, 500)), limit):
            progress, counts = job.progress, job.counts
            total = progress.total
            done = f"{progress.done}" + (f"/{total}" if total is not None else "")
            fields = (job.id, job.kind, job.status, job.dataset_id or "-", done)
            typer.echo("\t".join(map(str, (*fields, counts.failed, job.message or ""))))


@app.command("show")
def jobs_show(job_id: str) -> None:
    """A job's status, format, progress and counts, as JSON."""
    with client() as sdk:
        print_json(_public(sdk.get_job(job_id)))


@app.command("errors")
def jobs_errors(
    job_id: str,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many")] = None,
) -> None:
    """Every per-item error of a job, as NDJSON in item order."""
    with client() as sdk:
        errors = sdk.get_job(job_id).iter_errors()
        for err in itertools.islice(errors, limit):
            typer.echo(orjson.dumps(err, default=plain).decode())


@app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Stop a queued or running job (what it wrote so far stays)."""
    with client() as sdk:
        job = sdk.get_job(job_id).cancel()
        console.print(f"job {job.id} is {job.status}")


@app.command("wait", epilog=EXIT_CODES_HELP)
def jobs_wait(job_id: str) -> None:
    """Follow a job with a progress bar until it ends; exit with its outcome."""
    with client() as sdk:
        job = wait(sdk.get_job(job_id))
        counts = ", ".join(f"{k} {v}" for k, v in job.counts.to_dict().items())
        console.print(f"job {job.id} {job.status}  {counts}")
        if job.message:
            console.print(f"[red]{job.message}[/red]")
        raise typer.Exit(exit_code(job))


def _public(job: Job) -> dict[str, object]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "dataset_id": job.dataset_id,
        "format": job.format,
        "progress": job.progress,
        "counts": job.counts,
        "message": job.message,
    }
