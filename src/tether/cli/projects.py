"""``tether projects ...``: create, list, show and delete labeling projects.

``projects_app`` is the sub-app: the task, annotation and export commands join it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tether import Client, Project
from tether.cli.common import client, console, fail, out, print_json

projects_app = typer.Typer(
    help="Labeling projects: create them with a label config, list, show and delete them.",
    no_args_is_help=True,
)
PROJECT_HELP = "the project's id (digits) or name"


def register(app: typer.Typer) -> None:
    app.add_typer(projects_app, name="projects")


def project(sdk: Client, value: str) -> Project:
    """A project by id (digits) or by name."""
    return sdk.get_project(value)


@projects_app.command("create")
def create(
    name: str,
    label_config: Annotated[
        Path | None,
        typer.Option(
            "--label-config", help="a file of Label Studio's XML labeling config (- for stdin)"
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(help="a shipped label config instead (`tether projects templates`)"),
    ] = None,
    description: str = "",
) -> None:
    """Create a project with a label config (a file, or a shipped template)."""
    if (label_config is None) == (template is None):
        fail("give --label-config FILE or --template NAME (one of them)")
    xml = None
    if label_config is not None:
        xml = typer.get_text_stream("stdin").read() if str(label_config) == "-" else None
        if xml is None:
            try:
                xml = label_config.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                fail(f"cannot read {label_config}: {exc}")
    with client() as sdk:
        p = sdk.create_project(name, xml, description, template=template)
        console.print(f"created project {p.name} (id {p.id})")


@projects_app.command("list")
def list_projects() -> None:
    with client() as sdk:
        table = Table("id", "name", "tasks", "unlabeled", "labeled", "skipped", "created")
        for p in sdk.projects():
            c = p.task_counts
            table.add_row(
                str(p.id),
                p.name,
                str(p.task_count),
                str(c.unlabeled),
                str(c.labeled),
                str(c.skipped),
                p.created_at,
            )
        out.print(table)


@projects_app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="PROJECT", help=PROJECT_HELP)],
) -> None:
    """A project as JSON, with its label config and task counts."""
    with client() as sdk:
        print_json(project(sdk, name))


@projects_app.command("templates")
def templates(
    name: Annotated[str | None, typer.Argument(help="print this template's XML")] = None,
) -> None:
    """The shipped label config templates (for `create --template NAME`)."""
    with client() as sdk:
        found = sdk.label_config_templates()
    if name is None:
        for item in found:
            out.print(item)
        return
    if name not in found:
        fail(f"no template {name!r}; templates: {', '.join(found)}")
    typer.echo(found[name], nl=False)


@projects_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(metavar="PROJECT", help=PROJECT_HELP)],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Delete a project with its tasks, annotations and target storages (admins)."""
    with client() as sdk:
        p = project(sdk, name)
        if not yes:
            typer.confirm(f"delete project {p.name} (id {p.id}) and its annotations?", abort=True)
        p.delete()
        console.print(f"deleted project {p.name} (id {p.id})")
