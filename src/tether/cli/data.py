"""Commands that talk to a tether server through the SDK (TETHER_URL, TETHER_API_KEY)."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import httpx
import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether.cli import jobs
from tether.cli.common import (
    EXIT_CODES_HELP,
    WITH_ERRORS,
    client,
    console,
    dataset,
    exit_code,
    fail,
    is_id,
    out,
    plain,
    print_json,
    wait,
)
from tether.sdk import Client, Dataset, Job, NotFoundError, TetherAPIError

DATASET_HELP = "dataset id (digits) or name"
datasets_app = typer.Typer(help="List, create, rename and delete datasets.", no_args_is_help=True)
rows_app = typer.Typer(help="Find, show and delete data rows.", no_args_is_help=True)
schema_app = typer.Typer(help="The organization's metadata schema.", no_args_is_help=True)
FIRST_ERRORS = 10


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
    app.command("import", epilog=EXIT_CODES_HELP)(import_file)
    app.command("export", epilog=EXIT_CODES_HELP)(export)
    app.add_typer(rows_app, name="rows")
    app.add_typer(schema_app, name="schema")
    app.add_typer(jobs.app, name="jobs")


# --- datasets ------------------------------------------------------------------------------


@datasets_app.command("list")
def datasets_list() -> None:
    with client() as sdk:
        table = Table("id", "name", "description", "created")
        for d in sdk.datasets():
            table.add_row(str(d.id), d.name, d.description, d.created_at)
        out.print(table)


@datasets_app.command("create")
def datasets_create(name: str, description: str = "") -> None:
    with client() as sdk:
        d = sdk.create_dataset(name, description)
        console.print(f"created dataset {d.name} (id {d.id})")


@datasets_app.command("get")
def datasets_get(ds: Annotated[str, typer.Argument(metavar="DATASET", help=DATASET_HELP)]) -> None:
    """Show a dataset with its row count."""
    with client() as sdk:
        d = dataset(sdk, ds)
        print_json(
            {
                "id": d.id,
                "name": d.name,
                "description": d.description,
                "created_at": d.created_at,
                "row_count": d.count_rows(),
            }
        )


@datasets_app.command("rename")
def datasets_rename(
    ds: Annotated[str, typer.Argument(metavar="DATASET", help=DATASET_HELP)], new_name: str
) -> None:
    with client() as sdk:
        d = dataset(sdk, ds)
        old = d.name
        d.update(name=new_name)
        console.print(f"renamed {old} (id {d.id}) to {d.name}")


@datasets_app.command("delete")
def datasets_delete(
    ds: Annotated[str, typer.Argument(metavar="DATASET", help=DATASET_HELP)],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Delete a dataset and all its data rows."""
    with client() as sdk:
        d = dataset(sdk, ds)
        if not yes:
            typer.confirm(f"delete dataset {d.name} (id {d.id}) and all its rows?", abort=True)
        console.print(f"deleted {d.name} and {d.delete()} rows")


# --- import / export -----------------------------------------------------------------------


def import_file(
    file: Annotated[Path, typer.Argument(help="JSON, NDJSON, CSV, TSV or TXT")],
    ds: Annotated[str, typer.Option("--dataset", help=DATASET_HELP)],
    create: Annotated[
        bool, typer.Option("--create", help="create the dataset (by name) if missing")
    ] = False,
    upsert: Annotated[
        bool,
        typer.Option(
            "--upsert",
            help="update rows of this dataset whose global key exists instead of reporting it",
        ),
    ] = False,
    format: Annotated[
        str | None,
        typer.Option(
            help="json, ndjson, csv, tsv, txt, a kind (labelbox, label_studio) or both "
            "(csv/labelbox); detected when not given"
        ),
    ] = None,
    media_type: Annotated[str | None, typer.Option(help="media type for every row")] = None,
    errors_file: Annotated[
        Path | None, typer.Option(help="write every error here as NDJSON")
    ] = None,
) -> None:
    """Import data rows from a file, with a progress bar, a summary and the first errors.

    If the connection breaks while the import runs, the job id is printed: the import goes
    on on the server, and `tether jobs wait ID` follows it again.
    """
    if not file.is_file():
        fail(f"no file {file}")
    with client() as sdk:
        target = import_target(sdk, ds, create)
        job = wait(_upload(target, file, upsert, format, media_type))
        _summary(job, errors_file)
        raise typer.Exit(exit_code(job))


def import_target(sdk: Client, value: str, create: bool) -> Dataset:
    try:
        return dataset(sdk, value)
    except NotFoundError:
        if not create:
            raise
    if is_id(value):
        fail(f"--create makes a dataset by name, and {value} (all digits) reads as an id")
    made = sdk.create_dataset(value)
    console.print(f"created dataset {made.name} (id {made.id})")
    return made


def _upload(
    target: Dataset, file: Path, upsert: bool, format: str | None, media_type: str | None
) -> Job:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        size = file.stat().st_size
        upload = bar.add_task("upload (bytes)", total=size)
        job = target.create_data_rows(
            file,
            upsert=upsert,
            format=format,
            media_type=media_type,
            on_upload=lambda n: bar.advance(upload, n),
        )
        bar.update(upload, completed=size)
    console.print(f"job {job.id} started")
    return job


def _summary(job: Job, errors_file: Path | None) -> None:
    counts = job.counts
    failed = int(counts.get("failed") or 0)
    colour = {"completed": "green", "completed_with_errors": "yellow"}.get(job.status, "red")
    console.print(
        f"[{colour}]{job.status}[/{colour}]  format {job.format}  "
        f"created {counts.get('created', 0)}  updated {counts.get('updated', 0)}  "
        f"failed {failed}  (job {job.id})"
    )
    if job.message:
        console.print(f"[red]{job.message}[/red]")
    written = _show_errors(job, failed, errors_file)
    if errors_file:
        console.print(f"wrote {written} errors to {errors_file}")
    elif failed > FIRST_ERRORS:
        console.print(f"  … and {failed - FIRST_ERRORS} more (use --errors-file)")


def _show_errors(job: Job, failed: int, errors_file: Path | None) -> int:
    """Print the first errors; write all of them to ``errors_file`` (emptied in any case, so
    no stale file stays behind). Returns how many were written."""
    handle = errors_file.open("wb") if errors_file else None
    written = 0
    try:
        if not failed:
            return 0
        for i, err in enumerate(job.iter_errors()):
            if i < FIRST_ERRORS:
                item_key = err.get("item_key")
                if item_key == str(err.get("index")):
                    item_key = None  # a row index names the item already
                key = err.get("global_key") or item_key
                where = f"item {err.get('index')}" + (f" ({key})" if key else "")
                console.print(f"  {where}: [bold]{err['code']}[/bold] {err['message']}")
            if handle is None:
                if i >= FIRST_ERRORS:
                    break
                continue
            handle.write(orjson.dumps(err, default=plain, option=orjson.OPT_APPEND_NEWLINE))
            written += 1
    finally:
        if handle is not None:
            handle.close()
    return written


def export(
    ds: Annotated[str, typer.Argument(metavar="DATASET", help=DATASET_HELP)],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="file to write (standard output when not given)"),
    ] = None,
) -> None:
    """Write every row of a dataset as NDJSON (it imports again unchanged).

    With --output the rows go to a temporary file beside it, renamed to OUTPUT only when the
    export is complete: a failed export leaves no partial file and exits 1.
    """
    with client() as sdk:
        target = dataset(sdk, ds)
        if output is None:
            _export_to(target, sys.stdout.buffer, show=False)
            return
        partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
        try:
            with partial.open("wb") as sink:
                count = _export_to(target, sink, show=True)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
        console.print(f"exported {count} rows to {output}")


def _export_to(target: Dataset, sink: BinaryIO, show: bool) -> int:
    count = 0
    columns = (TextColumn("export"), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show) as bar:
        task = bar.add_task("export", total=None)
        try:
            for row in target.export():
                sink.write(orjson.dumps(row, default=plain) + b"\n")
                count += 1
                if count % 1000 == 0:
                    bar.update(task, completed=count)
        except (httpx.TransportError, TetherAPIError) as exc:
            reason = exc.message if isinstance(exc, TetherAPIError) else str(exc)
            fail(f"the export is incomplete: it broke off after {count} rows ({reason})")
        bar.update(task, completed=count)
    return count


# --- rows ----------------------------------------------------------------------------------


@rows_app.command("list")
def rows_list(
    ds: Annotated[str | None, typer.Option("--dataset", help=DATASET_HELP)] = None,
    media_type: str | None = None,
    external_id: str | None = None,
    global_key: str | None = None,
    global_key_prefix: str | None = None,
    metadata: Annotated[
        list[str] | None, typer.Option(help="FIELD:OP:VALUE, e.g. split:eq:valid (repeatable)")
    ] = None,
    tag_contains: str | None = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many rows")] = 20,
) -> None:
    """Print matching rows as NDJSON, in creation order (fetched a page at a time)."""
    with client() as sdk:
        filters: dict[str, Any] = {
            "media_type": media_type,
            "external_id": external_id,
            "global_key": global_key,
            "tag_contains": tag_contains,
            "global_key_prefix": global_key_prefix,
            "metadata": metadata or None,
        }
        if ds:
            filters["dataset_id"] = dataset(sdk, ds).id
        rows = sdk.data_rows(page_size=min(limit, 1000), **filters)
        for row in itertools.islice(rows, limit):
            typer.echo(orjson.dumps(row, default=plain).decode())


@rows_app.command("get")
def rows_get(data_row_id: int) -> None:
    with client() as sdk:
        print_json(sdk.get_data_row(data_row_id))


@rows_app.command("lookup")
def rows_lookup(global_keys: list[str]) -> None:
    """Data row ids for global keys (null when not found)."""
    with client() as sdk:
        for result in sdk.get_data_row_ids_for_global_keys(global_keys):
            typer.echo(f"{result['global_key']}\t{result['data_row_id'] or 'not found'}")


@rows_app.command("delete", epilog=EXIT_CODES_HELP)
def rows_delete(
    ids: Annotated[list[int] | None, typer.Option("--id", help="data row id (repeatable)")] = None,
    global_keys: Annotated[
        list[str] | None, typer.Option("--global-key", help="global key (repeatable)")
    ] = None,
) -> None:
    """Delete rows; one line a row given ('deleted', or why not)."""
    with client() as sdk:
        results = sdk.delete_data_rows(ids or [], global_keys or [])
        missed = 0
        for r in results:
            item = r.get("data_row_id", r.get("id")) or r.get("global_key")
            done = bool(r.get("deleted", r.get("ok")))
            missed += not done
            reason = r.get("error") or r.get("message") or r.get("code")
            typer.echo(f"{item}\t{'deleted' if done else reason}")
    if missed:
        raise typer.Exit(WITH_ERRORS)


# --- schema --------------------------------------------------------------------------------


@schema_app.command("list")
def schema_list() -> None:
    with client() as sdk:
        table = Table("id", "name", "kind", "details")
        for f in sdk.metadata_schema():
            details = ", ".join(o["name"] for o in f.get("options") or []) or (
                f"dimension {f['dimension']}" if f.get("dimension") else ""
            )
            table.add_row(
                f["id"], f["name"] + (" (reserved)" if f["reserved"] else ""), f["kind"], details
            )
        out.print(table)


@schema_app.command("create")
def schema_create(
    name: str,
    kind: Annotated[str, typer.Option(help="string, number, datetime, enum or embedding")],
    option: Annotated[list[str] | None, typer.Option(help="enum option (repeatable)")] = None,
    dimension: Annotated[int | None, typer.Option(help="embedding dimension")] = None,
) -> None:
    with client() as sdk:
        f = sdk.create_metadata_field(name, kind, option, dimension)
        console.print(f"created metadata field {f['name']} ({f['kind']}, id {f['id']})")


@schema_app.command("delete")
def schema_delete(field: str) -> None:
    with client() as sdk:
        sdk.delete_metadata_field(field)
        console.print(f"deleted metadata field {field}")
