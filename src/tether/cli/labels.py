"""``tether projects annotations`` and ``tether projects predictions``: listing a project's
annotations, importing predictions from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tether.cli.common import client, fail, follow, out, print_json
from tether.cli.projects import PROJECT_HELP, project


def register(app: typer.Typer) -> None:
    """Add the commands to ``projects_app``."""
    app.command("annotations")(annotations_list)
    app.command("predictions")(predictions_import)


def annotations_list(
    name: Annotated[str, typer.Argument(metavar="PROJECT", help=PROJECT_HELP)],
    task: Annotated[
        int | None, typer.Option("--task", metavar="DATA_ROW_ID", help="only this task's")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print them as JSON (Label Studio's shape)")
    ] = False,
) -> None:
    """A project's annotations (or one task's), oldest first."""
    with client() as sdk:
        found = list(project(sdk, name).annotations(data_row_id=task, page_size=1000))
    if as_json:
        print_json(found)
        return
    table = Table("id", "task", "by", "regions", "skip", "ground truth", "version", "updated")
    for a in found:
        table.add_row(
            str(a.id),
            str(a.data_row_id),
            "" if a.completed_by is None else str(a.completed_by),
            str(len(a.result)),
            "yes" if a.was_cancelled else "",
            "yes" if a.ground_truth else "",
            str(a.version),
            a.updated_at or "",
        )
    out.print(table)


def predictions_import(
    name: Annotated[str, typer.Argument(metavar="PROJECT", help=PROJECT_HELP)],
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help='a JSON array or NDJSON of {"data_row_id" or "global_key", "result", '
            '"model_version", "score"}, or Label Studio tasks with "predictions"',
        ),
    ],
    format: Annotated[
        str | None, typer.Option(help="json or ndjson (detected when not given)")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="print the job id and return at once")
    ] = False,
) -> None:
    """Import predictions into a project's tasks (a progress bar, then the items not taken)."""
    if not file.is_file():
        fail(f"no file {file}")
    with client() as sdk:
        job = project(sdk, name).upload_predictions(file, format=format, wait=False)
        follow(job, no_wait, ("created", "failed"))
