"""``tether probe --dataset NAME``: fill in the media attributes of a dataset's rows, with a
progress bar, a summary and the first errors (exit codes as every data command's)."""

from __future__ import annotations

import itertools
from typing import Annotated

import typer

from tether.cli.common import EXIT_CODES_HELP, client, console, dataset, exit_code, wait
from tether.sdk import Job

FIRST_ERRORS = 10
COUNTS = ("probed", "unchanged", "skipped", "failed")


def register(app: typer.Typer) -> None:
    app.command("probe", epilog=EXIT_CODES_HELP)(probe)


def probe(
    ds: Annotated[str, typer.Option("--dataset", help="dataset id (digits) or name")],
    force: Annotated[
        bool, typer.Option("--force", help="probe every row again, not only those lacking them")
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="print the job's id and exit (follow it with `jobs wait`)"),
    ] = False,
) -> None:
    """Read the headers of a dataset's image, video, audio and PDF assets through their
    storages (a few ranged reads each, never a whole asset) and record width, height,
    mimeType, duration, frameRate, pageCount and size in their media attributes."""
    with client() as sdk:
        job = dataset(sdk, ds).probe(force=force)
        console.print(f"job {job.id} {job.status}")
        if no_wait:
            typer.echo(job.id)
            return
        job = wait(job)
        _summary(job)
        raise typer.Exit(exit_code(job))


def _summary(job: Job) -> None:
    counts = job.counts.to_dict()
    colour = {"completed": "green", "completed_with_errors": "yellow"}.get(job.status, "red")
    tallies = "  ".join(f"{name} {counts.get(name, 0)}" for name in COUNTS)
    console.print(f"[{colour}]{job.status}[/{colour}]  {tallies}  (job {job.id})")
    if job.message:
        console.print(f"[red]{job.message}[/red]")
    failed = int(counts.get("failed") or 0)
    for err in itertools.islice(job.iter_errors(), FIRST_ERRORS if failed else 0):
        console.print(
            f"  {err.get('item_key') or '?'}: [bold]{err['code']}[/bold] {err['message']}"
        )
    if failed > FIRST_ERRORS:
        console.print(f"  … and {failed - FIRST_ERRORS} more (`tether jobs errors {job.id}`)")
