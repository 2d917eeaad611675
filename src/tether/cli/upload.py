"""``tether upload FILES_OR_FOLDERS --dataset NAME [--storage ID]``: local files into storage
the organization owns, and a data row for each.

Each file's key is its path under the folder given (a file given by itself: its name), so a
re-run maps every file to the same key: files already stored are not sent again, and rows
already made (their global key is the object's URI) are not made again. Hidden files and
folders (names starting with ``.``) are left out.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from tether.cli.common import (
    EXIT_CODES_HELP,
    FAILED,
    OK,
    WITH_ERRORS,
    client,
    console,
    fail,
    wait,
)
from tether.cli.data import import_target
from tether.sdk import Client, Dataset, Job

FileUpload = Any  # what Dataset.upload_files yields (path, name, uri, created, ok, row())

LOOKUP_BATCH = 10_000
FIRST_ERRORS = 10


@dataclass
class Plan:
    files: list[tuple[Path, str]] = field(default_factory=list)  # (path, name under prefix)
    errors: list[dict[str, Any]] = field(default_factory=list)  # found before any upload

    def error(self, path: Path | str, code: str, message: str) -> None:
        self.errors.append({"path": str(path), "code": code, "message": message})


def register(app: typer.Typer) -> None:
    app.command("upload", epilog=EXIT_CODES_HELP)(upload)


def upload(
    paths: Annotated[
        list[Path],
        typer.Argument(metavar="FILES_OR_FOLDERS", help="files, and folders (all their files)"),
    ],
    ds: Annotated[str, typer.Option("--dataset", help="dataset id (digits) or name")],
    storage: Annotated[
        int | None,
        typer.Option(
            "--storage",
            help="a source storage of the dataset (id); default: its only one, else the "
            "folder tether keeps for uploads",
        ),
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", help="create the dataset (by name) if missing")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace other objects stored under the keys")
    ] = False,
    errors_file: Annotated[
        Path | None, typer.Option(help="write every error here as NDJSON")
    ] = None,
) -> None:
    """Upload files into storage and make a data row for each, with a progress bar.

    Resumable: run it again after an interruption, and what is stored and made already is
    skipped. A file that cannot be uploaded (too large, unreadable, gone) is reported and
    the rest go on.
    """
    plan = collect(paths)
    if not plan.files and not plan.errors:
        fail("no files to upload")
    with client() as sdk:
        target = import_target(sdk, ds, create)
        results = _send(target, plan, storage, overwrite)
        uploaded = [r for r in results if r.ok]
        failures = plan.errors + [
            {"path": str(r.path), "code": r.code, "message": r.message} for r in results if not r.ok
        ]
        new_rows = _rows_to_make(sdk, uploaded)
        skipped = len(uploaded) - len(new_rows)
        job = wait(target.create_data_rows(new_rows)) if new_rows else None
        code = _report(uploaded, failures, skipped, job, errors_file)
    raise typer.Exit(code)


def collect(paths: list[Path]) -> Plan:
    """Every file to upload and its name: a file given by itself by its name, a folder's
    files by their path under it (sorted, hidden names left out)."""
    plan = Plan()
    for given in paths:
        if given.is_dir():
            for path, name in _walk(given):
                plan.files.append((path, name))
        elif given.is_file():
            plan.files.append((given, given.name))
        else:
            plan.error(given, "file_not_found", f"no file or folder {given}")
    seen: dict[str, Path] = {}
    kept: list[tuple[Path, str]] = []
    for path, name in plan.files:
        if name in seen:
            plan.error(path, "duplicate_key", f"{path} and {seen[name]} would both be {name!r}")
            continue
        seen[name] = path
        kept.append((path, name))
    plan.files = kept
    return plan


def _walk(folder: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(top) / name
            found.append((path, path.relative_to(folder).as_posix()))
    return found


class _Amount(ProgressColumn):
    """Files as ``done/total``; bytes as ``1.2/3.4 MB``."""

    def __init__(self) -> None:
        super().__init__()
        self.count_column, self.bytes_column = MofNCompleteColumn(), DownloadColumn()

    def render(self, task: Task) -> Text:
        return (self.bytes_column if task.fields.get("bytes") else self.count_column).render(task)


def _send(target: Dataset, plan: Plan, storage: int | None, overwrite: bool) -> list[FileUpload]:
    total = 0
    for path, _name in plan.files:
        with contextlib.suppress(OSError):  # reported when its turn comes
            total += path.stat().st_size
    results: list[FileUpload] = []
    columns = (TextColumn("{task.description}"), BarColumn(), _Amount(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        files = bar.add_task("upload (files)", total=len(plan.files))
        sent = bar.add_task("upload (bytes)", total=total, bytes=True)
        for result in target.upload_files(
            plan.files,
            storage=storage,
            overwrite=overwrite,
            on_bytes=lambda n: bar.advance(sent, n),
        ):
            results.append(result)
            bar.advance(files)
            if not result.ok:
                console.print(f"  {result.path}: [bold]{result.code}[/bold] {result.message}")
    return results


def _rows_to_make(sdk: Client, uploaded: list[FileUpload]) -> list[dict[str, Any]]:
    """The rows of uploaded files that no row holds yet (by global key: the URI)."""
    uris = [str(r.uri) for r in uploaded]
    taken: set[str] = set()
    for start in range(0, len(uris), LOOKUP_BATCH):
        found = sdk.get_data_row_ids_for_global_keys(uris[start : start + LOOKUP_BATCH])
        taken.update(f.global_key for f in found if f.data_row_id is not None)
    return [result.row() for result in uploaded if result.uri not in taken]


def _report(
    uploaded: list[FileUpload],
    failures: list[dict[str, Any]],
    skipped_rows: int,
    job: Job | None,
    errors_file: Path | None,
) -> int:
    sent = sum(1 for r in uploaded if r.created)
    console.print(
        f"files: {sent} uploaded, {len(uploaded) - sent} already there, {len(failures)} failed"
    )
    row_errors = []
    if job is not None:
        counts = job.counts
        console.print(
            f"rows: {counts.get('created', 0)} created, {skipped_rows} already there, "
            f"{counts.get('failed', 0)} failed  (job {job.id}, {job.status})"
        )
        if job.message:
            console.print(f"[red]{job.message}[/red]")
        if counts.get("failed"):
            row_errors = [e.model_dump(mode="json") for e in job.iter_errors()]
    else:
        console.print(f"rows: 0 created, {skipped_rows} already there")
    every = failures + row_errors
    for error in every[:FIRST_ERRORS]:
        where = error.get("path") or error.get("global_key") or f"row {error.get('index')}"
        console.print(f"  {where}: [bold]{error['code']}[/bold] {error['message']}")
    if len(every) > FIRST_ERRORS and errors_file is None:
        console.print(f"  … and {len(every) - FIRST_ERRORS} more (use --errors-file)")
    if errors_file is not None:
        with errors_file.open("wb") as sink:
            for error in every:
                sink.write(orjson.dumps(error, option=orjson.OPT_APPEND_NEWLINE))
        console.print(f"wrote {len(every)} errors to {errors_file}")
    if job is not None and job.status not in ("completed", "completed_with_errors"):
        return FAILED
    return WITH_ERRORS if every else OK
