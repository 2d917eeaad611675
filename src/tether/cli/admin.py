"""Commands that act on the local configuration (database, data dir) directly.

The server side (settings, SQLAlchemy, Alembic) is imported inside each command, so the data
commands, which only talk HTTP, start quickly.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from tether.errors import TetherError

if TYPE_CHECKING:
    from sqlalchemy import Engine

console = Console(stderr=True, soft_wrap=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(migrate)
    app.command()(worker)
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")


def _engine(pooled: bool = False, create: bool = False) -> Engine:
    """The configured database, migrated, said on stderr. Only ``migrate`` and ``serve``
    (``create=True``) make a database that is not there: elsewhere a missing one is an
    error, so a command run from another directory does not quietly start an empty one."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from tether.config import get_settings
    from tether.db.engine import make_engine, make_oneoff_engine
    from tether.db.migrate import upgrade
    from tether.security.secrets import redact_url

    settings = get_settings()
    url = settings.sqlalchemy_url
    parsed = make_url(url)
    console.print(f"database: {parsed.render_as_string(hide_password=True)}", highlight=False)
    sqlite_file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not create and sqlite_file and not Path(sqlite_file).exists():
        _no_database(f"there is no tether database at {sqlite_file}")
    engine = make_engine(url) if pooled else make_oneoff_engine(url)
    try:
        if not create and not inspect(engine).has_table("alembic_version"):
            engine.dispose()
            _no_database("the database holds no tether schema")
        upgrade(engine)
    except SQLAlchemyError as exc:  # the message names host and port, never the password
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        console.print(f"[red]error:[/red] cannot use the database {redact_url(url)}: {reason}")
        raise typer.Exit(1) from None
    return engine


def _no_database(why: str) -> NoReturn:
    console.print(
        f"[red]error:[/red] {why}. Run `tether migrate` to create it, or point this command "
        "at the server's database with TETHER_DATA_DIR or TETHER_DATABASE_URL "
        "(a relative TETHER_DATA_DIR, and the default ./tether-data, depend on the directory "
        "you run in).",
        highlight=False,
    )
    raise typer.Exit(1)


def _fail(exc: TetherError) -> NoReturn:
    console.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(1)


def migrate() -> None:
    """Create or upgrade the database schema (keeps existing rows)."""
    _engine(create=True)
    console.print("database is up to date")


def serve(
    host: Annotated[str | None, typer.Option(help="bind address (TETHER_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (TETHER_PORT)")] = None,
    demo: Annotated[bool, typer.Option(help="create a demo user, API key and dataset")] = False,
) -> None:
    """Run the API server (with job workers inside unless TETHER_EMBEDDED_WORKER=false)."""
    import uvicorn

    from tether.api.app import create_app
    from tether.config import get_settings
    from tether.demo import ensure_demo, ensure_demo_password

    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # uploads and the queue live there
    engine = _engine(create=True)
    url = settings.public_url or f"http://{host}:{port}"
    if demo:
        key = ensure_demo(engine, settings.data_dir)
        password = ensure_demo_password(engine, settings.data_dir, key)
        console.print(
            f"demo user admin@example.com; API key:\n  export TETHER_URL={url}"
            f"\n  export TETHER_API_KEY={key}"
            f"\nweb UI: {url}/  (sign in as admin@example.com, password {password})"
        )
    engine.dispose()
    app = create_app(settings)
    _freeze_startup_objects()
    console.print(f"tether is listening on {url}  (API docs: {url}/api/v1/docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def worker(
    workers: Annotated[int | None, typer.Option(help="worker threads (TETHER_WORKERS)")] = None,
) -> None:
    """Run job workers only (with TETHER_QUEUE_URL=redis://... on as many machines as needed)."""
    from tether.config import get_settings
    from tether.runtime import build_queue

    settings = get_settings()
    queue = build_queue(settings, _engine(pooled=True))
    _freeze_startup_objects()
    console.print(f"tether worker: {workers or settings.workers} thread(s)")
    queue.run_worker(workers or settings.workers)


def _freeze_startup_objects() -> None:
    """Keep what start-up made (modules, the app) out of the garbage collector's full
    passes: a bulk import allocates millions of objects, and each full pass would walk every
    one of those start-up objects again (this halves the import's own Python time)."""
    gc.collect()
    gc.freeze()


@users_app.command("create")
def users_create(
    email: str,
    org: Annotated[str, typer.Option(help="organization (created when new)")],
    admin: Annotated[
        bool, typer.Option("--admin", help="make the user an admin (default: a member)")
    ] = False,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="read the password as one line of standard input"),
    ] = False,
) -> None:
    """Create a user in an organization."""
    from tether import accounts

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        console.print("[red]error:[/red] the password is empty")
        raise typer.Exit(1)
    try:
        with _engine().begin() as conn:
            accounts.create_user(conn, email, org, password, admin)
    except TetherError as exc:
        _fail(exc)
    console.print(
        f"created user {email.strip().lower()} in {org} ({'admin' if admin else 'member'})"
    )


@keys_app.command("create")
def keys_create(
    email: str,
    name: Annotated[str, typer.Option(help="a name to recognise the key by")] = "default",
) -> None:
    """Print a new API key for the user (on stdout, nothing else)."""
    from tether import accounts

    try:
        with _engine().begin() as conn:
            key = accounts.create_api_key(conn, email, name)
    except TetherError as exc:
        _fail(exc)
    typer.echo(key)


@keys_app.command("list")
def keys_list(email: str) -> None:
    """The user's keys: id, name, first characters, created, last used, revoked."""
    from tether import accounts

    try:
        with _engine().begin() as conn:
            keys = accounts.list_api_keys(conn, email)
    except TetherError as exc:
        _fail(exc)
    for k in keys:
        typer.echo(
            f"{k['id']}\t{k['name']}\t{k['hint']}…\tcreated {k['created_at']}\t"
            f"last used {k['last_used_at'] or '-'}\t"
            f"{'revoked' if k['revoked_at'] else 'active'}"
        )


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke a key by its id (see `tether keys list`)."""
    from tether import accounts

    try:
        with _engine().begin() as conn:
            accounts.revoke_api_key(conn, key_id)
    except TetherError as exc:
        _fail(exc)
    console.print(f"revoked key {key_id}")
