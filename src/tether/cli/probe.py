"""``tether probe --dataset NAME``: fill in the media attributes of a dataset's rows, with a
progress bar, a summary and the first errors (exit codes as every data command's)."""

from __future__ import annotations

from typing import Annotated

import typer

from tether.cli.common import (
    EXIT_CODES_HELP,
    client,
    console,
    dataset,
    follow,
)

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
        follow(job, no_wait, COUNTS)
