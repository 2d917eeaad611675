"""``tether projects add-rows`` and ``tether projects tasks``: a project's tasks."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from tether.cli.common import EXIT_CODES_HELP, client, dataset, fail, follow, plain
from tether.cli.projects import PROJECT_HELP, project

COUNTS_SHOWN = ("added", "existing", "imported_annotations", "imported_predictions", "failed")


def register(app: typer.Typer) -> None:
    """Add the task commands to ``tether projects``."""
    app.command("add-rows", epilog=EXIT_CODES_HELP)(add_rows)
    app.command("tasks")(list_tasks)


def _lines(path: Path) -> list[str]:
    """A file's lines, one item a line (blank lines skipped); ``-`` is stdin."""
    try:
        text = (
            typer.get_text_stream("stdin").read()
            if str(path) == "-"
            else path.read_text(encoding="utf-8-sig")
        )
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _ids(path: Path) -> list[int]:
    out = []
    for number, line in enumerate(_lines(path), 1):
        if not (line.isascii() and line.isdigit()):
            fail(f"{path} line {number}: {line!r} is not a data row id")
        out.append(int(line))
    return out


def add_rows(
    name: Annotated[str, typer.Argument(metavar="PROJECT", help=PROJECT_HELP)],
    ds: Annotated[
        str | None, typer.Option("--dataset", help="the rows of this dataset (id or name)")
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(help="only rows matching FIELD:OP:VALUE, e.g. split:eq:train (repeatable)"),
    ] = None,
    media_type: Annotated[str | None, typer.Option(help="only rows of this media type")] = None,
    global_keys_file: Annotated[
        Path | None, typer.Option(help="the rows of these global keys, one a line (- stdin)")
    ] = None,
    data_row_ids_file: Annotated[
        Path | None, typer.Option(help="the rows of these ids, one a line (- for stdin)")
    ] = None,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="print the job's id and exit (follow it with `jobs wait`)"),
    ] = False,
) -> None:
    """Add data rows to a project as tasks (an add_tasks job, followed with a progress bar).
    Rows already in the project count as existing; rows that cannot join are reported."""
    if not (ds or metadata or media_type or global_keys_file or data_row_ids_file):
        fail("say which rows: --dataset, --metadata, --media-type, or a file of keys or ids")
    keys = _lines(global_keys_file) if global_keys_file is not None else None
    ids = _ids(data_row_ids_file) if data_row_ids_file is not None else None
    with client() as sdk:
        p = project(sdk, name)
        job = p.add_data_rows(
            dataset=dataset(sdk, ds).id if ds else None,
            metadata=metadata or None,
            media_type=media_type,
            data_row_ids=ids,
            global_keys=keys,
            wait=False,
        )
        follow(job, no_wait, COUNTS_SHOWN)


def list_tasks(
    name: Annotated[str, typer.Argument(metavar="PROJECT", help=PROJECT_HELP)],
    status: Annotated[str | None, typer.Option(help="unlabeled, labeled or skipped")] = None,
    ds: Annotated[str | None, typer.Option("--dataset", help="only this dataset's rows")] = None,
    metadata: Annotated[
        list[str] | None, typer.Option(help="FIELD:OP:VALUE of the rows (repeatable)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many tasks")] = 20,
) -> None:
    """Print a project's tasks as NDJSON, in data row id order."""
    with client() as sdk:
        p = project(sdk, name)
        filters: dict[str, Any] = {"metadata": metadata or None}
        if ds:
            filters["dataset_id"] = dataset(sdk, ds).id
        found = p.tasks(page_size=min(limit, 1000), status=status, **filters)
        for task in itertools.islice(found, limit):
            typer.echo(orjson.dumps(task, default=plain).decode())
