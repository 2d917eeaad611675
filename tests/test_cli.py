"""The ``tether`` command as a user runs it: real processes, a real ``tether serve``.

Admin commands name their database and never create one by accident; ``serve --demo``
recovers from a missing data dir and a revoked key; data commands exit 0 / 2 / 1, page
through, follow jobs, survive a lost connection and never leave a partial export.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import _psycopg
from tests.test_e2e import (
    KEY_RE,
    TETHER,
    Server,
    clean_env,
    free_port,
    fresh_pg_database,
    labelbox_rows,
    ok,
    read_ndjson,
    run_cli,
    running_server,
    unique,
    with_item_errors,
    write_ndjson,
)
from tether import Client, __version__

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One SQLite server for the module (the commands do not depend on the database; the
    server's own tests run on both), with an account made through the CLI."""
    with running_server(tmp_path_factory.mktemp("cli")) as srv:
        srv.email, srv.key = srv.new_account()
        yield srv


def import_new(server: Server, path: Path, name: str) -> Any:
    return ok(server.cli("import", str(path), "--dataset", name, "--create"))


def failed(result: Any) -> Any:
    assert result.returncode == 1, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


# --- admin commands and their database ------------------------------------------------------

ADMIN_COMMANDS = [
    ("users", "create", "a@example.com", "--org", "o", "--password-stdin"),
    ("keys", "create", "a@example.com"),
    ("keys", "list", "a@example.com"),
    ("keys", "revoke", "1"),
    ("worker",),
]


@pytest.mark.parametrize("args", ADMIN_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_admin_commands_refuse_to_create_a_database(tmp_path: Path, args: tuple[str, ...]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for config in ({}, {"TETHER_DATA_DIR": str(tmp_path / "no-such-dir")}):
        result = failed(run_cli(clean_env(**config), *args, input="pw\n", cwd=elsewhere))
        assert "tether migrate" in result.stderr and "TETHER_DATA_DIR" in result.stderr
        assert "database: sqlite:///" in result.stderr
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "no-such-dir").exists()


def test_an_empty_postgresql_database_is_not_taken_for_one(tmp_path: Path) -> None:
    with fresh_pg_database() as url:
        with_password = url.replace("postgres@", "postgres:s3cret@")
        env = clean_env(TETHER_DATABASE_URL=with_password)
        result = failed(run_cli(env, "keys", "list", "a@example.com", cwd=tmp_path))
        assert "holds no tether schema" in result.stderr and "tether migrate" in result.stderr
        assert "s3cret" not in result.stderr and "database: postgresql" in result.stderr
        engine = create_engine(_psycopg(url))
        with engine.connect() as conn:
            tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname='public'"))
            assert tables.scalar_one() == 0
        engine.dispose()
        made = ok(run_cli(env, "migrate", cwd=tmp_path))
        assert "database: postgresql" in made.stderr and "s3cret" not in made.stderr
        user = ok(
            run_cli(
                env, "users", "create", "a@example.com", "--org", "o", "--password-stdin",
                input="pw\n", cwd=tmp_path,
            )
        )  # fmt: skip
        assert "created user a@example.com" in user.stderr


def test_migrate_creates_and_admin_commands_then_say_which_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    env = clean_env(TETHER_DATA_DIR=str(data_dir))
    made = ok(run_cli(env, "migrate", cwd=tmp_path))
    db = (data_dir / "tether.db").resolve()
    assert f"database: sqlite:///{db}" in made.stderr and db.exists()
    created = ok(
        run_cli(
            env, "users", "create", "b@example.com", "--org", "o", "--password-stdin",
            input="pw\n", cwd=tmp_path,
        )
    )  # fmt: skip
    assert f"database: sqlite:///{db}" in created.stderr
    key = ok(run_cli(env, "keys", "create", "b@example.com", cwd=tmp_path)).stdout
    assert KEY_RE.fullmatch(key.strip())  # stdout holds the key and nothing else


# --- serve --demo ---------------------------------------------------------------------------


def _demo_key(output: str) -> str:
    found = [line for line in output.splitlines() if "export TETHER_API_KEY=" in line]
    assert found, output
    return found[-1].split("=", 1)[1].strip()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_serve_demo_makes_its_data_dir_and_replaces_a_revoked_key(
    tmp_path: Path, database: str
) -> None:
    data_dir = tmp_path / "does" / "not" / "exist"
    with contextlib.ExitStack() as stack:
        config = {}
        if database == "postgresql":
            config["TETHER_DATABASE_URL"] = stack.enter_context(fresh_pg_database())
        with running_server(tmp_path, "--demo", TETHER_DATA_DIR=str(data_dir), **config) as srv:
            key = _demo_key(srv.output())
            with Client(srv.url, api_key=key) as c:
                assert [d.name for d in c.datasets()] == ["demo"]
            keys = ok(srv.admin("keys", "list", "admin@example.com")).stdout.splitlines()
            ok(srv.admin("keys", "revoke", keys[0].split("\t")[0]))
        assert (data_dir / "demo-api-key").read_text().strip() == key
        with running_server(tmp_path, "--demo", TETHER_DATA_DIR=str(data_dir), **config) as srv:
            new = _demo_key(srv.output())
            assert new != key and "Traceback" not in srv.output()
            with Client(srv.url, api_key=new) as c:
                assert [d.name for d in c.datasets()] == ["demo"]
                assert len(list(c.get_dataset_by_name("demo").data_rows())) == 14
            assert (data_dir / "demo-api-key").read_text().strip() == new
            assert (data_dir / "demo-api-key").stat().st_mode & 0o777 == 0o600
            # The web UI's sign-in: the printed password works, the same on every start.
            shown = [line for line in srv.output().splitlines() if "web UI:" in line]
            assert shown and srv.url + "/" in shown[-1], srv.output()
            password = shown[-1].rsplit("password ", 1)[1].rstrip(")").strip()
            assert (data_dir / "demo-password").read_text().strip() == password
            assert (data_dir / "demo-password").stat().st_mode & 0o777 == 0o600
            answer = httpx.post(
                f"{srv.url}/api/v1/session",
                json={"email": "admin@example.com", "password": password},
            )
            assert answer.status_code == 200, answer.text


# --- data commands --------------------------------------------------------------------------


def test_version() -> None:
    result = ok(run_cli(clean_env(), "--version"))
    assert result.stdout.strip() == f"tether {__version__}"


def test_help_documents_the_exit_codes() -> None:
    for args in ((), ("import",), ("jobs", "wait")):
        shown = " ".join(ok(run_cli(clean_env(), *args, "--help")).stdout.split())
        assert "2 completed with per-item errors" in shown, args
        assert "1 failed, canceled or could not start" in shown, args


def test_a_usage_error_exits_1() -> None:
    for args in (("import",), ("rows", "list", "--limit", "0"), ("no-such-command",)):
        failed(run_cli(clean_env(TETHER_API_KEY="x"), *args))


def test_import_exit_codes_follow_the_job(server: Server, tmp_path: Path) -> None:
    name = unique("codes")
    good = write_ndjson(tmp_path / "good.ndjson", labelbox_rows(name, 5))
    done = ok(server.cli("import", str(good), "--dataset", name, "--create"))
    job_id = done.stderr.split("(job ")[-1].split(")")[0]
    assert f"job {job_id} started" in done.stderr
    # Every row fails (their global keys exist): completed, with per-item errors.
    every = with_item_errors(server.cli("import", str(good), "--dataset", name))
    assert "created 0" in every.stderr and "failed 5" in every.stderr
    bad = {"global_key": unique("no-row-data")}
    some = write_ndjson(tmp_path / "some.ndjson", [*labelbox_rows(unique("n"), 2), bad])
    with_item_errors(server.cli("import", str(some), "--dataset", name, "--format", "ndjson"))
    # Imports that cannot start: an empty file, a dataset that is not there.
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    assert "empty" in failed(server.cli("import", str(empty), "--dataset", name)).stderr
    failed(server.cli("import", str(good), "--dataset", unique("absent")))
    digits = failed(server.cli("import", str(good), "--dataset", "987654", "--create"))
    assert "reads as an id" in digits.stderr


def test_jobs_commands(server: Server, tmp_path: Path) -> None:
    name = unique("jobs")
    rows = [*labelbox_rows(name, 4), {"global_key": "no-row-data"}, {"global_key": "again"}]
    path = write_ndjson(tmp_path / "r.ndjson", rows)
    result = with_item_errors(server.cli("import", str(path), "--dataset", name, "--create"))
    job_id = result.stderr.split("(job ")[-1].split(")")[0]

    listed = ok(server.cli("jobs", "list", "--limit", "500")).stdout
    assert job_id in listed
    shown = orjson.loads(ok(server.cli("jobs", "show", job_id)).stdout)
    assert shown["id"] == job_id and shown["status"] == "completed_with_errors"
    assert shown["counts"]["created"] == 4 and shown["counts"]["failed"] == 2
    errors = [orjson.loads(x) for x in ok(server.cli("jobs", "errors", job_id)).stdout.splitlines()]
    assert [e["index"] for e in errors] == [4, 5]
    assert len(ok(server.cli("jobs", "errors", job_id, "--limit", "1")).stdout.splitlines()) == 1
    waited = with_item_errors(server.cli("jobs", "wait", job_id))
    assert f"job {job_id} completed_with_errors" in waited.stderr
    late = failed(server.cli("jobs", "cancel", job_id))
    assert "finished already" in late.stderr
    missing = failed(server.cli("jobs", "show", "nope"))
    assert "nope" in missing.stderr


def test_rows_list_pages_past_one_thousand(server: Server, tmp_path: Path) -> None:
    name = unique("many")
    rows = [
        {"row_data": f"s3://b/{name}/{i}.jpg", "global_key": f"{name}-{i}"} for i in range(2345)
    ]
    import_new(server, write_ndjson(tmp_path / "r.ndjson", rows), name)
    for limit, expected in ((5000, 2345), (2001, 2001), (1000, 1000), (1, 1)):
        listed = ok(server.cli("rows", "list", "--dataset", name, "--limit", str(limit)))
        keys = [orjson.loads(x)["global_key"] for x in listed.stdout.splitlines()]
        assert keys == [r["global_key"] for r in rows[:expected]], limit


def test_dataset_names_and_ids_from_the_cli(server: Server, tmp_path: Path) -> None:
    with server.client() as c:
        target = c.create_dataset(unique("target"))
        lookalike = c.create_dataset(str(target.id))
    rows = write_ndjson(tmp_path / "r.ndjson", labelbox_rows(unique("ids"), 3))
    ok(server.cli("import", str(rows), "--dataset", str(target.id)))
    shown = orjson.loads(ok(server.cli("datasets", "get", str(target.id))).stdout)
    assert (shown["id"], shown["row_count"]) == (target.id, 3)
    shown = orjson.loads(ok(server.cli("datasets", "get", f"00{target.id}")).stdout)
    assert shown["id"] == target.id
    exported = tmp_path / "out.ndjson"
    ok(server.cli("export", str(target.id), "-o", str(exported)))
    assert len(read_ndjson(exported)) == 3
    ok(server.cli("datasets", "delete", str(target.id), "--yes"))
    gone = failed(server.cli("datasets", "get", str(target.id)))
    assert f"no dataset with id {target.id}" in gone.stderr
    failed(server.cli("datasets", "delete", str(target.id), "--yes"))
    with server.client() as c:
        assert c.get_dataset(lookalike.id).name == str(target.id)  # untouched


class Proxy:
    """A TCP proxy in front of the server. ``refuse_on`` (request bytes): when a request
    starts with them, that connection is closed unanswered and no new one is accepted (the
    server went away). ``cut_on`` + ``keep``: the answer to such a request is cut after
    ``keep`` bytes (a broken stream)."""

    def __init__(self, upstream: int, refuse_on: bytes = b"", cut_on: bytes = b"", keep: int = 0):
        self.upstream, self.refuse_on, self.cut_on, self.keep = upstream, refuse_on, cut_on, keep
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.tripped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                down, _ = self.listener.accept()
                up = socket.create_connection(("127.0.0.1", self.upstream))
                cut = threading.Event()
                threading.Thread(target=self._requests, args=(down, up, cut), daemon=True).start()
                threading.Thread(target=self._answers, args=(up, down, cut), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket, cut: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if self.refuse_on and data.startswith(self.refuse_on):
                    self.tripped.set()
                    self.listener.close()
                    break
                if self.cut_on and data.startswith(self.cut_on):
                    cut.set()
                dst.sendall(data)
        self._close(src, dst)

    def _answers(self, src: socket.socket, dst: socket.socket, cut: threading.Event) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if cut.is_set():
                    data = data[: max(self.keep - sent, 0)]
                    sent += len(data)
                    dst.sendall(data)
                    if sent >= self.keep:
                        self.tripped.set()
                        break
                    continue
                dst.sendall(data)
        self._close(src, dst)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def proxy(upstream: Server, **kwargs: Any) -> Iterator[Proxy]:
    p = Proxy(int(upstream.url.rsplit(":", 1)[1]), **kwargs)
    try:
        yield p
    finally:
        p.close()


def test_a_connection_lost_mid_import_names_the_job_to_come_back_to(
    server: Server, tmp_path: Path
) -> None:
    name = unique("lost")
    path = write_ndjson(tmp_path / "r.ndjson", labelbox_rows(name, 3000))
    with server.client() as c:
        c.create_dataset(name)
    with proxy(server, refuse_on=b"GET /api/v1/jobs/") as p:
        env = clean_env(TETHER_URL=p.url, TETHER_API_KEY=server.key)
        lost = failed(run_cli(env, "import", str(path), "--dataset", name))
        assert p.tripped.is_set()
    said = " ".join(lost.stderr.split())
    assert "lost the connection" in said, lost.stderr
    job_id = said.split("tether jobs wait ")[1].split("`")[0]
    back = ok(server.cli("jobs", "wait", job_id))
    assert f"job {job_id} completed" in back.stderr and "created 3000" in back.stderr


def test_a_broken_export_leaves_no_partial_file(server: Server, tmp_path: Path) -> None:
    name = unique("cut")
    rows = labelbox_rows(name, 3000)
    import_new(server, write_ndjson(tmp_path / "r.ndjson", rows), name)
    output = tmp_path / "export.ndjson"
    output.write_bytes(b"an earlier, complete export\n")
    for keep in (100, 50_000, 300_000):
        with proxy(server, cut_on=b"GET /api/v1/datasets/", keep=keep) as p:
            env = clean_env(TETHER_URL=p.url, TETHER_API_KEY=server.key)
            # get (by name) goes first, and is cut too when keep is small: either way exit 1.
            broken = failed(run_cli(env, "export", name, "-o", str(output), cwd=tmp_path))
            assert p.tripped.is_set()
            assert "the export is incomplete" in broken.stderr, broken.stderr
            assert output.read_bytes() == b"an earlier, complete export\n", keep
            assert sorted(x.name for x in tmp_path.iterdir()) == ["export.ndjson", "r.ndjson"]
            to_stdout = failed(run_cli(env, "export", name))
            assert "the export is incomplete" in to_stdout.stderr
    ok(server.cli("export", name, "-o", str(output)))
    assert len(read_ndjson(output)) == 3000


class _ErrorLineExport(BaseHTTPRequestHandler):
    """A stand-in for a server that reports a failed export in its stream (a line
    ``{"error": ...}``): tether's own server does so only when an export breaks."""

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/datasets?"):
            body = orjson.dumps({"items": [{"id": 5, "name": "d", "description": "",
                                            "created_at": "", "updated_at": ""}]})  # fmt: skip
            self._answer(body, "application/json")
        elif self.path == "/api/v1/datasets/5/export":
            rows = b"".join(orjson.dumps({"id": i, "row_data": "x"}) + b"\n" for i in range(3))
            error = {"error": {"code": "export_incomplete", "message": "dataset deleted"}}
            self._answer(rows + orjson.dumps(error) + b"\n", "application/x-ndjson")
        else:
            self.send_error(404)

    def _answer(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def test_an_error_line_in_the_export_fails_it(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ErrorLineExport)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        env = clean_env(TETHER_URL=f"http://127.0.0.1:{httpd.server_port}", TETHER_API_KEY="k")
        output = tmp_path / "out.ndjson"
        result = failed(run_cli(env, "export", "d", "-o", str(output), cwd=tmp_path))
        assert "incomplete" in result.stderr and "dataset deleted" in result.stderr
        assert list(tmp_path.iterdir()) == []
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_no_key_says_to_set_the_environment_variable() -> None:
    result = failed(
        run_cli(clean_env(TETHER_URL=f"http://127.0.0.1:{free_port()}"), "jobs", "list")
    )
    assert "set TETHER_API_KEY" in result.stderr and "api_key=" not in result.stderr


def _readme_block(section: str, language: str) -> str:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index(f"## {section}")
    block = readme[start:].split(f"```{language}\n", 1)[1]
    return block.split("```", 1)[0]


def test_the_readme_quickstarts_run_one_after_the_other(tmp_path: Path) -> None:
    """Both quickstarts, as written, against a fresh `tether serve --demo` (what
    scripts/serve.sh runs after installing)."""
    data_dir = tmp_path / "tether-data"
    with running_server(tmp_path, "--demo", TETHER_DATA_DIR=str(data_dir)) as srv:
        user = tmp_path / "user"
        user.mkdir()
        bin_dir = str(Path(TETHER).parent)
        env = clean_env(TETHER_URL=srv.url, TETHER_API_KEY=_demo_key(srv.output()))
        env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
        script = _readme_block("Quickstart: the CLI", "bash")
        cli = subprocess.run(
            ["bash", "-e", "-c", script], env=env, cwd=user, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert cli.returncode == 0, (cli.stdout, cli.stderr)
        assert "created 3" in cli.stderr and "created 2" in cli.stderr
        assert len(read_ndjson(user / "street-scenes.ndjson")) == 5
        python = _readme_block("Quickstart: the Python SDK", "python")
        sdk = subprocess.run(
            [sys.executable, "-c", python], env=env, cwd=user, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert sdk.returncode == 0, (sdk.stdout, sdk.stderr)
        assert sdk.stdout.startswith("completed ") and "img-0001" in sdk.stdout, sdk.stdout


def test_a_canceled_job_exits_1(tmp_path: Path) -> None:
    """Without a worker the job waits in the queue; cancelled there, it ends canceled."""
    with running_server(tmp_path, TETHER_EMBEDDED_WORKER="false") as srv:
        srv.email, srv.key = srv.new_account()
        name = unique("cancel")
        with srv.client() as c:
            job = c.create_dataset(name).create_data_rows(labelbox_rows(name, 3))
        assert job.status == "queued"
        listed = ok(srv.cli("jobs", "list")).stdout.splitlines()
        assert listed[0].split("\t")[:3] == [job.id, "import", "queued"]
        canceled = ok(srv.cli("jobs", "cancel", job.id))
        assert f"job {job.id} is canceled" in canceled.stderr
        waited = failed(srv.cli("jobs", "wait", job.id))
        assert f"job {job.id} canceled" in waited.stderr
