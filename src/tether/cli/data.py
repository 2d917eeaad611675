"""Commands that talk to a tether server through the SDK (TETHER_URL, TETHER_API_KEY)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether.sdk import Client, Job, NotFoundError, TetherAPIError
from tether.sdk._client import DEFAULT_URL

console = Console(stderr=True, soft_wrap=True)
out = Console()
datasets_app = typer.Typer(help="List, create, rename and delete datasets.", no_args_is_help=True)
rows_app = typer.Typer(help="Find, show and delete data rows.", no_args_is_help=True)
schema_app = typer.Typer(help="The organization's metadata schema.", no_args_is_help=True)
FIRST_ERRORS = 10


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
    app.command("import")(import_file)
    app.command("export")(export)
    app.add_typer(rows_app, name="rows")
    app.add_typer(schema_app, name="schema")


@contextmanager
def _client() -> Iterator[Client]:
    """An SDK client; server errors end the command with their message, not a traceback."""
    try:
        with Client() as client:
            yield client
    except TetherAPIError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except (OSError, httpx.TransportError) as exc:
        console.print(f"[red]error:[/red] cannot reach the server at {_url()}: {exc}")
        raise typer.Exit(1) from None


def _url() -> str:
    return os.environ.get("TETHER_URL") or DEFAULT_URL


def _json(value: Any) -> None:
    typer.echo(orjson.dumps(value, default=_plain, option=orjson.OPT_INDENT_2).decode())


def _plain(value: Any) -> Any:
    """The SDK's answers are pydantic models: JSON as the server sent them."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON")


# --- datasets ------------------------------------------------------------------------------


@datasets_app.command("list")
def datasets_list() -> None:
    with _client() as client:
        table = Table("id", "name", "description", "created")
        for d in client.datasets():
            table.add_row(str(d.id), d.name, d.description, d.created_at)
        out.print(table)


@datasets_app.command("create")
def datasets_create(name: str, description: str = "") -> None:
    with _client() as client:
        d = client.create_dataset(name, description)
        console.print(f"created dataset {d.name} (id {d.id})")


@datasets_app.command("get")
def datasets_get(dataset: str) -> None:
    """Show a dataset (by id or name) with its row count."""
    with _client() as client:
        _json(
            client._json(
                "GET", f"/datasets/{client.get_dataset(dataset).id}", params={"with_count": True}
            )
        )


@datasets_app.command("rename")
def datasets_rename(dataset: str, new_name: str) -> None:
    with _client() as client:
        client.get_dataset(dataset).update(name=new_name)
        console.print(f"renamed {dataset} to {new_name}")


@datasets_app.command("delete")
def datasets_delete(
    dataset: str, yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False
) -> None:
    """Delete a dataset and all its data rows."""
    with _client() as client:
        d = client.get_dataset(dataset)
        if not yes:
            typer.confirm(f"delete dataset {d.name} and all its rows?", abort=True)
        console.print(f"deleted {d.name} and {d.delete()} rows")


# --- import / export -----------------------------------------------------------------------


def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="JSON, NDJSON, CSV, TSV or TXT"
        ),
    ],
    dataset: Annotated[str, typer.Option(help="dataset id or name")],
    create: Annotated[bool, typer.Option("--create", help="create the dataset if missing")] = False,
    upsert: Annotated[
        bool,
        typer.Option(
            "--upsert", help="update rows whose global key exists instead of reporting it"
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
    """Import data rows from a file, with a progress bar, a summary and the first errors."""
    with _client() as client:
        try:
            target = client.get_dataset(dataset)
        except NotFoundError:
            if not create:
                raise
            target = client.create_dataset(dataset)
            console.print(f"created dataset {target.name}")
        job = _run_import(target, file, upsert, format, media_type)
        _summary(job, errors_file)
        if job.status in ("failed", "canceled"):
            raise typer.Exit(1)


def _run_import(
    target: Any, file: Path, upsert: bool, format: str | None, media_type: str | None
) -> Job:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
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
        rows = bar.add_task("import (rows)", total=None)

        def show(j: Job) -> None:
            bar.update(
                rows,
                completed=j.progress["done"],
                total=j.progress["total"],
                description=f"import (rows, {j.format or 'detecting'})",
            )

        return job.wait_till_done(poll=0.3, on_progress=show)


def _summary(job: Job, errors_file: Path | None) -> None:
    counts = job.counts
    colour = {"completed": "green", "completed_with_errors": "yellow"}.get(job.status, "red")
    console.print(
        f"[{colour}]{job.status}[/{colour}]  format {job.format}  "
        f"created {counts['created']}  updated {counts['updated']}  "
        f"failed {counts['failed']}  (job {job.id})"
    )
    if job.message:
        console.print(f"[red]{job.message}[/red]")
    handle = errors_file.open("wb") if errors_file else None  # never leave a stale file
    written = 0
    try:
        if counts["failed"]:
            for i, err in enumerate(job.iter_errors()):
                if i < FIRST_ERRORS:
                    where = f"item {err['index']}" + (
                        f" ({err['global_key']})" if err["global_key"] else ""
                    )
                    console.print(f"  {where}: [bold]{err['code']}[/bold] {err['message']}")
                if handle is None and i >= FIRST_ERRORS:
                    break
                if handle is not None:
                    handle.write(
                        orjson.dumps(err, default=_plain, option=orjson.OPT_APPEND_NEWLINE)
                    )
                    written += 1
    finally:
        if handle is not None:
            handle.close()
    if errors_file:
        console.print(f"wrote {written} errors to {errors_file}")
    elif counts["failed"] > FIRST_ERRORS:
        console.print(f"  … and {counts['failed'] - FIRST_ERRORS} more (use --errors-file)")


def export(
    dataset: Annotated[str, typer.Argument(help="dataset id or name")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="file to write (standard output when not given)"),
    ] = None,
) -> None:
    """Write every row of a dataset as NDJSON (it imports again unchanged)."""
    with _client() as client:
        target = client.get_dataset(dataset)
        sink = output.open("wb") if output else sys.stdout.buffer
        count = 0
        try:
            with Progress(
                TextColumn("export"),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                disable=output is None,
            ) as bar:
                task = bar.add_task("export", total=None)
                for row in target.export():
                    sink.write(orjson.dumps(row) + b"\n")
                    count += 1
                    if count % 1000 == 0:
                        bar.update(task, completed=count)
                bar.update(task, completed=count)
        finally:
            if output:
                sink.close()
        if output:
            console.print(f"exported {count} rows to {output}")


# --- rows ----------------------------------------------------------------------------------


@rows_app.command("list")
def rows_list(
    dataset: Annotated[str | None, typer.Option(help="dataset id or name")] = None,
    media_type: str | None = None,
    external_id: str | None = None,
    global_key: str | None = None,
    global_key_prefix: str | None = None,
    metadata: Annotated[
        list[str] | None, typer.Option(help="FIELD:OP:VALUE, e.g. split:eq:valid (repeatable)")
    ] = None,
    tag_contains: str | None = None,
    limit: Annotated[int, typer.Option(help="at most this many rows")] = 20,
) -> None:
    """Print matching rows as NDJSON."""
    with _client() as client:
        filters: dict[str, Any] = {
            "media_type": media_type,
            "external_id": external_id,
            "global_key": global_key,
            "tag_contains": tag_contains,
            "global_key_prefix": global_key_prefix,
        }
        if dataset:
            filters["dataset_id"] = client.get_dataset(dataset).id
        params = {k: v for k, v in filters.items() if v is not None}
        if metadata:
            params["metadata"] = metadata
        params["limit"] = min(limit, 1000)
        for row in client._json("GET", "/data-rows", params=params)["items"][:limit]:
            typer.echo(orjson.dumps(row).decode())


@rows_app.command("get")
def rows_get(data_row_id: int) -> None:
    with _client() as client:
        _json(client.get_data_row(data_row_id))


@rows_app.command("lookup")
def rows_lookup(global_keys: list[str]) -> None:
    """Data row ids for global keys (null when not found)."""
    with _client() as client:
        for result in client.get_data_row_ids_for_global_keys(global_keys):
            typer.echo(f"{result['global_key']}\t{result['data_row_id'] or 'not found'}")


@rows_app.command("delete")
def rows_delete(
    ids: Annotated[list[int] | None, typer.Option("--id", help="data row id (repeatable)")] = None,
    global_keys: Annotated[
        list[str] | None, typer.Option("--global-key", help="global key (repeatable)")
    ] = None,
) -> None:
    with _client() as client:
        results = client.delete_data_rows(ids or [], global_keys or [])
        for r in results:
            item = r.get("data_row_id", r.get("global_key"))
            typer.echo(f"{item}\t{'deleted' if r['deleted'] else r['error']}")


# --- schema --------------------------------------------------------------------------------


@schema_app.command("list")
def schema_list() -> None:
    with _client() as client:
        table = Table("id", "name", "kind", "details")
        for f in client.metadata_schema():
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
    with _client() as client:
        f = client.create_metadata_field(name, kind, option, dimension)
        console.print(f"created metadata field {f['name']} ({f['kind']}, id {f['id']})")


@schema_app.command("delete")
def schema_delete(field: str) -> None:
    with _client() as client:
        client.delete_metadata_field(field)
        console.print(f"deleted metadata field {field}")
