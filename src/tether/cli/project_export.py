"""``tether projects export PROJECT -o FILE``: a project's tasks with their annotations and
predictions as Label Studio's JSON (or NDJSON), or COCO, YOLO or Pascal VOC."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tether.cli.common import EXIT_CODES_HELP, client, console
from tether.cli.projects import PROJECT_HELP, project

FORMATS = ("json", "ndjson", "coco", "yolo", "voc")
STATUSES = ("unlabeled", "labeled", "skipped")


def register(app: typer.Typer) -> None:
    app.command("export", epilog=EXIT_CODES_HELP)(export)


def export(
    name: Annotated[str, typer.Argument(metavar="PROJECT", help=PROJECT_HELP)],
    output: Annotated[
        str, typer.Option("--output", "-o", help="the file to write (- for standard output)")
    ],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="json (Label Studio's export), ndjson (a task a line), coco (one JSON), "
            "yolo or voc (a zip)",
        ),
    ] = "json",
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="only tasks of this status (repeatable: unlabeled, labeled, skipped); "
            "coco, yolo and voc hold labeled tasks unless told"
        ),
    ] = None,
) -> None:
    """Write a project's tasks with their annotations and predictions.

    The file is written only when the export is complete (a temporary file beside it is
    renamed): a failed export leaves no partial file and exits 1. COCO, YOLO and VOC are
    made on the server by Label Studio's converter (`pip install 'tether[convert]'` there).
    """
    if format not in FORMATS:
        raise typer.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
    for s in status or ():
        if s not in STATUSES:
            raise typer.BadParameter(f"one of {', '.join(STATUSES)}", param_hint="--status")
    target: Path | IO[bytes] = sys.stdout.buffer if output == "-" else Path(output)
    with client() as sdk:
        p = project(sdk, name)
        columns = (
            TextColumn(f"export {format}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, disable=output == "-") as bar:
            task = bar.add_task("export", total=None)

            def progress(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            count = p.export(format, target, status=status, on_progress=progress)
    if output != "-":
        console.print(f"exported {count} tasks of project {p.name} as {format} to {output}")
