"""What the data commands share: the SDK client, dataset addressing, waiting for a job and
the exit codes. Only the SDK's public API is used here (the CLI is one of its clients)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tether.sdk import Client, Dataset, Job, NotFoundError, TetherAPIError

console = Console(stderr=True, soft_wrap=True, highlight=False)
out = Console(highlight=False)

# Exit codes of every data command (the README and `tether --help` say the same).
OK = 0  # completed
FAILED = 1  # failed, canceled, or could not start (bad input, no server, no key)
WITH_ERRORS = 2  # completed, but some items failed (reported)
EXIT_BY_STATUS = {"completed": OK, "completed_with_errors": WITH_ERRORS}
EXIT_CODES_HELP = (
    "Exit codes: 0 completed; 2 completed with per-item errors (reported); "
    "1 failed, canceled or could not start."
)


class JobLost(Exception):
    """The connection broke while a job ran on the server (it goes on there)."""

    def __init__(self, job_id: str, cause: BaseException) -> None:
        super().__init__(job_id)
        self.job_id = job_id
        self.cause = cause


def fail(message: str, code: int = FAILED) -> NoReturn:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def server_url() -> str:
    return (os.environ.get("TETHER_URL") or "http://127.0.0.1:8080").rstrip("/")


@contextmanager
def client() -> Iterator[Client]:
    """An SDK client for TETHER_URL / TETHER_API_KEY; errors end the command with their
    message and exit code 1, never a traceback."""
    if not os.environ.get("TETHER_API_KEY"):
        fail(
            "no API key: set TETHER_API_KEY to one (an admin prints one with "
            "`tether keys create EMAIL`; `tether serve --demo` prints a demo key)"
        )
    sdk = Client()
    try:
        yield sdk
    except JobLost as exc:
        fail(
            f"lost the connection to the server ({exc.cause}); job {exc.job_id} goes on "
            f"there: see it with `tether jobs wait {exc.job_id}`"
        )
    except TetherAPIError as exc:
        fail(exc.message)
    except httpx.TransportError as exc:
        fail(f"cannot reach the server at {sdk.url}: {exc}")
    except OSError as exc:
        fail(str(exc))
    finally:
        sdk.close()


def is_id(value: str) -> bool:
    return value.isascii() and value.isdigit()


def dataset(sdk: Client, value: str) -> Dataset:
    """A dataset by id (ASCII digits) or else by name (the explicit lookup)."""
    if is_id(value):
        try:
            return sdk.get_dataset(int(value))
        except NotFoundError as exc:
            hint = " (digits are an id; `tether datasets list` shows ids and names)"
            raise NotFoundError(exc.status, exc.code, exc.message + hint, exc.details) from None
    return sdk.get_dataset_by_name(value)


def plain(value: Any) -> Any:
    """``default`` for orjson: the SDK's answers are pydantic models, written as the JSON the
    server sent."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON")


def print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, default=plain, option=orjson.OPT_INDENT_2).decode())


def wait(job: Job) -> Job:
    """Follow a job with a progress bar until it ends; a lost connection raises JobLost."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        rows = bar.add_task(f"{job.kind} (items)", total=None)

        def show(j: Job) -> None:
            bar.update(
                rows,
                completed=j.progress.done,
                total=j.progress.total,
                description=describe(j),
            )

        try:
            return job.wait_till_done(poll=0.3, on_progress=show)
        except (httpx.TransportError, TetherAPIError) as exc:
            raise JobLost(job.id, exc) from exc


# What each kind's progress bar counts, and the tally shown beside it.
COUNTED = {
    "sync": ("objects", "created"),
    "sync_part": ("objects", "created"),
    "predictions": ("items", "created"),
    "add_tasks": ("rows", "added"),
    "export": ("annotations", "written"),
    "probe": ("rows", "probed"),
}


def describe(job: Job) -> str:
    """What a job's progress bar counts: an import its rows, a sync the objects it compared."""
    if job.kind in COUNTED:
        unit, tally = COUNTED[job.kind]
        return f"{job.kind} ({unit}; {tally} {job.counts.to_dict().get(tally, 0)})"
    return f"{job.kind} (rows, {job.format or 'detecting'})"


def exit_code(job: Job) -> int:
    return EXIT_BY_STATUS.get(job.status, FAILED)


FIRST_ERRORS = 10  # errors a job's summary shows (the rest: ``tether jobs errors``)


def follow(job: Job, no_wait: bool, counts_shown: tuple[str, ...]) -> None:
    """Print the job's id and return (``--no-wait``), or wait for it with a progress bar,
    print its summary and exit with its code."""
    if no_wait:
        typer.echo(job.id)
        return
    job = wait(job)
    summary(job, counts_shown)
    raise typer.Exit(exit_code(job))


def summary(job: Job, counts_shown: tuple[str, ...]) -> None:
    """A finished job in a few lines: its status and ``counts_shown``, its message, and its
    first errors (each naming its object key and, for a manifest's item, its index)."""
    counts = job.counts.to_dict()
    colour = {"completed": "green", "completed_with_errors": "yellow"}.get(job.status, "red")
    tallies = "  ".join(f"{name} {counts.get(name, 0)}" for name in counts_shown)
    console.print(f"[{colour}]{job.status}[/{colour}]  {tallies}  (job {job.id})")
    if job.message:
        console.print(f"[red]{job.message}[/red]")
    failed = int(counts.get("failed") or 0)
    if not failed:
        return
    for err in itertools.islice(job.iter_errors(), FIRST_ERRORS):
        where = err.get("item_key") or "?"
        item = (err.get("details") or {}).get("item_index")
        if item is not None:
            where = f"{where} item {item}"
        console.print(f"  {where}: [bold]{err['code']}[/bold] {err['message']}")
    if failed > FIRST_ERRORS:
        console.print(f"  … and {failed - FIRST_ERRORS} more (`tether jobs errors {job.id}`)")
