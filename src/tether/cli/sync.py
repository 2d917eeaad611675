"""``tether storage sync ID``: sync a source storage into its dataset (or export a project's
annotations to a target storage), with a progress bar,
a summary and the first errors; the exit codes of every data command (0 completed, 2 with
per-item errors, 1 failed or could not start).

``register(storage_app)`` adds the command to the ``tether storage`` sub-app.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tether.cli.common import EXIT_CODES_HELP, client, console, follow

COUNTS = ("listed", "created", "updated", "unchanged", "missing", "removed", "failed")
EXPORT_COUNTS = ("written", "unchanged", "deleted", "failed")


def register(storage_app: typer.Typer) -> None:
    """Add ``sync`` to the ``tether storage`` commands."""
    storage_app.command("sync", epilog=EXIT_CODES_HELP)(storage_sync)


def storage_sync(
    storage_id: Annotated[int, typer.Argument(metavar="ID", help="the storage's id", min=1)],
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="print the job's id and exit (follow it with `jobs wait`)"),
    ] = False,
) -> None:
    """Sync a source storage: new objects become data rows, changed ones update theirs,
    gone ones are counted missing (and removed with remove_missing). On a target storage:
    export the project's new and changed annotations (one object each) and, with
    can_delete_objects, delete the objects of deleted ones.

    A storage syncs once at a time: while its sync runs, this follows that one. If the
    connection breaks, the sync goes on on the server; `tether jobs wait ID` follows it.
    """
    with client() as sdk:
        job = sdk.sync_storage(storage_id)
        fresh = job.status == "queued" and job.started_at is None
        console.print(f"job {job.id} {'started' if fresh else 'was already ' + job.status}")
        follow(job, no_wait, EXPORT_COUNTS if job.kind == "export" else COUNTS)
