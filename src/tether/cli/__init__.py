"""The ``tether`` command.

Admin commands (serve, migrate, worker, users, keys) act on the local configuration;
data commands (datasets, import, upload, export, rows, schema, jobs, storage, probe, org,
projects)
talk to a server through ``TETHER_URL`` / ``TETHER_API_KEY``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tether import __version__
from tether.cli import (
    admin,
    data,
    labels,
    probe,
    project_export,
    project_tasks,
    projects,
    storage,
    sync,
    upload,
)
from tether.cli.common import EXIT_CODES_HELP, FAILED

app = typer.Typer(
    help="tether: label data where it lives.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tether {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """tether: label data where it lives."""


admin.register(app)
data.register(app)
storage.register(app)
sync.register(storage.storage_app)
upload.register(app)
probe.register(app)
projects.register(app)
labels.register(projects.projects_app)
project_export.register(projects.projects_app)
project_tasks.register(projects.projects_app)


def main() -> None:
    """Run the command; a usage error exits 1 like any other failure to start (2 means
    "completed with per-item errors")."""
    command = typer.main.get_command(app)
    try:
        code = command.main(standalone_mode=False)
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        code = FAILED
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        exc.show()  # type: ignore[attr-defined]
        code = FAILED
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(exc: Exception) -> bool:
    """Click's UsageError, whichever click (typer vendors one of its own since 0.20)."""
    return hasattr(exc, "show") and any(c.__name__ == "UsageError" for c in type(exc).__mro__)
