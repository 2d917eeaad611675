"""``tether storage ...`` (connect, list, show, check, delete storages) and ``tether org show``.
A storage is a source of a dataset (``--dataset``) or a target of a project (``--project``).

Secrets stay out of shell history: each secret option also reads an environment variable
(``TETHER_STORAGE_SECRET_ACCESS_KEY``, ...), ``--secret-stdin`` reads the type's main secret
from standard input, and ``--service-account-json`` takes a file (``-``: standard input).
``storage_app`` is the sub-app: other commands (``tether storage sync``) join it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tether.cli.common import client, console, dataset, fail, out, print_json
from tether.sdk import Storage

storage_app = typer.Typer(
    help="Connect buckets, containers, folders and Redis dbs to datasets; list, show, "
    "check and delete the connections.",
    no_args_is_help=True,
)
org_app = typer.Typer(help="The organization of your API key.", no_args_is_help=True)
TYPES = ("s3", "gcs", "azure_blob", "redis", "local")
# The secret stdin gives to each type (--secret-stdin).
MAIN_SECRET = {
    "s3": "secret_access_key",
    "gcs": "service_account_json",
    "azure_blob": "account_key",
    "redis": "password",
}
ID_HELP = "the storage's id (`tether storage list`)"


def register(app: typer.Typer) -> None:
    app.add_typer(storage_app, name="storage")
    app.add_typer(org_app, name="org")


def _secret(flag: str, env: str, help: str) -> Any:
    return typer.Option(flag, envvar=env, show_envvar=True, help=help + " (prefer the variable)")


Text = str | None


@storage_app.command("add")
def add(
    type_: Annotated[str, typer.Argument(metavar="TYPE", help=" | ".join(TYPES))],
    ds: Annotated[
        str | None,
        typer.Option("--dataset", help="a source of this dataset (id or name): rows come in"),
    ] = None,
    proj: Annotated[
        str | None,
        typer.Option(
            "--project", help="a target of this project (id or name): its annotations go out"
        ),
    ] = None,
    bucket: Annotated[Text, typer.Option(help="s3, gcs: the bucket")] = None,
    container: Annotated[Text, typer.Option(help="azure_blob: the container")] = None,
    prefix: Annotated[Text, typer.Option(help="s3, gcs, azure_blob: a plain key prefix")] = None,
    region: Annotated[Text, typer.Option(help="s3: the region")] = None,
    endpoint_url: Annotated[
        Text, typer.Option(help="s3, gcs, azure_blob: another endpoint")
    ] = None,
    access_key_id: Annotated[
        Text, _secret("--access-key-id", "TETHER_STORAGE_ACCESS_KEY_ID", "s3: key id")
    ] = None,
    secret_access_key: Annotated[
        Text,
        _secret("--secret-access-key", "TETHER_STORAGE_SECRET_ACCESS_KEY", "s3: secret key"),
    ] = None,
    session_token: Annotated[
        Text, _secret("--session-token", "TETHER_STORAGE_SESSION_TOKEN", "s3: session token")
    ] = None,
    role_arn: Annotated[
        Text, typer.Option(help="s3: an IAM role to assume (see `tether org show`)")
    ] = None,
    service_account_json: Annotated[
        Path | None,
        typer.Option(help="gcs: the service-account key file (- for standard input)"),
    ] = None,
    account_name: Annotated[Text, typer.Option(help="azure_blob: the account")] = None,
    account_key: Annotated[
        Text, _secret("--account-key", "TETHER_STORAGE_ACCOUNT_KEY", "azure_blob: account key")
    ] = None,
    host: Annotated[Text, typer.Option(help="redis: the host")] = None,
    port: Annotated[int | None, typer.Option(help="redis: the port")] = None,
    password: Annotated[
        Text, _secret("--password", "TETHER_STORAGE_PASSWORD", "redis: the password")
    ] = None,
    db: Annotated[int | None, typer.Option(help="redis: the db number")] = None,
    path: Annotated[
        Text, typer.Option(help="local: the folder (absolute); redis: the key prefix")
    ] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin",
            help="read the secret from standard input: s3 secret_access_key, azure_blob "
            "account_key, redis password, gcs service_account_json",
        ),
    ] = False,
    title: Annotated[Text, typer.Option()] = None,
    regex_filter: Annotated[
        Text, typer.Option(help="only keys it matches (Python re.match from the start)")
    ] = None,
    recursive: Annotated[
        bool | None,
        typer.Option("--recursive/--no-recursive", help="off: only objects directly under"),
    ] = None,
    treat_every_object_as_source_file: Annotated[
        bool | None,
        typer.Option(
            "--treat-every-object-as-source-file/--no-treat-every-object-as-source-file",
            help="one row per object; off: each object is a JSON/NDJSON manifest of tasks",
        ),
    ] = None,
    use_signed_urls: Annotated[
        bool | None,
        typer.Option("--use-signed-urls/--no-use-signed-urls", help="off: tether streams"),
    ] = None,
    signed_url_ttl_minutes: Annotated[int | None, typer.Option()] = None,
    remove_missing: Annotated[
        bool | None,
        typer.Option(
            "--remove-missing/--no-remove-missing", help="a sync removes vanished objects' rows"
        ),
    ] = None,
    sync_every_minutes: Annotated[
        int | None, typer.Option(help="sync on a schedule (default: manual)")
    ] = None,
    can_delete_objects: Annotated[
        bool | None,
        typer.Option(
            "--can-delete-objects/--no-can-delete-objects",
            help="target: an export deletes the objects of deleted annotations (default off)",
        ),
    ] = None,
    auto_export: Annotated[
        bool | None,
        typer.Option(
            "--auto-export/--no-auto-export",
            help="target: export after each annotation save (default on)",
        ),
    ] = None,
) -> None:
    """Connect a storage (admins): a source of a dataset (--dataset; rows come in) or a
    target of a project (--project; annotations go out, one JSON object each). It is
    checked first: nothing is saved when tether cannot list and read a source or write to a
    target, and the error says what to fix."""
    if type_ not in TYPES:
        fail(f"unknown storage type {type_!r}; expected one of {', '.join(TYPES)}")
    if (ds is None) == (proj is None):
        fail("give --dataset (a source storage) or --project (a target storage): one of them")
    given = {k: v for k, v in locals().items() if k not in NOT_FIELDS and v is not None}
    if service_account_json is not None:
        given["service_account_json"] = _read(service_account_json)
    if secret_stdin:
        if type_ not in MAIN_SECRET:
            fail(f"{type_} storages have no secret to read")
        given[MAIN_SECRET[type_]] = sys.stdin.read().strip("\r\n")
    with client() as sdk:
        if proj is not None:
            owner = sdk.get_project(proj)
            storage = owner.add_target_storage(type_, **given)
            console.print(
                f"added target storage {storage.id} ({where(storage)}) to project {owner.name}"
            )
        else:
            source_of = dataset(sdk, ds or "")
            storage = source_of.add_source_storage(type_, **given)
            console.print(
                f"added storage {storage.id} ({where(storage)}) to dataset {source_of.name}"
            )
        _warnings(storage.check.warnings if storage.check else [])
        print_json(storage)


NOT_FIELDS = {"type_", "ds", "proj", "secret_stdin", "service_account_json"}


def _read(source: Path) -> str:
    if str(source) == "-":
        return sys.stdin.read()
    try:
        return source.read_text()
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror}")


@storage_app.command("list")
def list_storages(
    ds: Annotated[
        str | None, typer.Option("--dataset", help="only this dataset's (id or name)")
    ] = None,
    proj: Annotated[
        str | None, typer.Option("--project", help="only this project's targets (id or name)")
    ] = None,
) -> None:
    with client() as sdk:
        chosen = dataset(sdk, ds) if ds is not None else None
        owner = sdk.get_project(proj) if proj is not None else None
        table = Table(
            "id", "type", "role", "dataset", "project", "where", "title", "schedule",
            "secrets set",
        )  # fmt: skip
        for s in sdk.storages(chosen, owner):
            every = f"every {s.sync_every_minutes} min" if s.sync_every_minutes else "manual"
            if s.role == "target":
                every = "after each save" if s.auto_export else "manual"
            table.add_row(
                str(s.id),
                s.type,
                s.role,
                str(s.dataset_id or ""),
                str(s.project_id or ""),
                where(s),
                s.title,
                every,
                ", ".join(s.secret_fields_set),
            )
        out.print(table)


@storage_app.command("show")
def show(storage_id: Annotated[int, typer.Argument(metavar="ID", help=ID_HELP)]) -> None:
    """The storage's fields (secrets are write-only: only their names are shown)."""
    with client() as sdk:
        print_json(sdk.get_storage(storage_id))


@storage_app.command("delete")
def delete(
    storage_id: Annotated[int, typer.Argument(metavar="ID", help=ID_HELP)],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Delete the connection (admins). The dataset's rows stay; the store is not touched."""
    with client() as sdk:
        storage = sdk.get_storage(storage_id)
        if not yes:
            typer.confirm(f"delete storage {storage.id} ({where(storage)})?", abort=True)
        storage.delete()
        console.print(f"deleted storage {storage_id}")


@storage_app.command("check")
def check(storage_id: Annotated[int, typer.Argument(metavar="ID", help=ID_HELP)]) -> None:
    """Check that tether can list and read the storage now (a target: write and delete a
    probe object). Exit 0 when it can (warnings are printed), 1 with what to fix when it
    cannot."""
    with client() as sdk:
        storage = sdk.get_storage(storage_id)
        result = storage.validate()
    _warnings(result.warnings)
    for error in result.errors:
        console.print(f"[red]error:[/red] {error.message}")
    if not result.ok:
        raise typer.Exit(1)
    seen = f" (read {result.sample_key})" if result.sample_key else ""
    console.print(f"storage {storage_id} ({where(storage)}) is reachable{seen}")


@org_app.command("show")
def org_show() -> None:
    """Your organization, with the external ID to put in an IAM role's trust policy."""
    with client() as sdk:
        print_json(sdk.organization())


def where(s: Storage) -> str:
    """Where a storage points, in one short string."""
    c = s.config
    if s.type == "s3":
        return f"s3://{c.get('bucket')}/{c.get('prefix') or ''}"
    if s.type == "gcs":
        return f"gs://{c.get('bucket')}/{c.get('prefix') or ''}"
    if s.type == "azure_blob":
        return f"azure-blob://{c.get('container')}/{c.get('prefix') or ''}"
    if s.type == "redis":
        return f"redis://{c.get('host')}:{c.get('port')}/{c.get('db')} {c.get('path') or ''}"
    return str(c.get("path") or "")


def _warnings(found: list[Any]) -> None:
    for warning in found:
        console.print(f"[yellow]warning:[/yellow] {warning.message}")
