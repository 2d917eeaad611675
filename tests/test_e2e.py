"""End to end: ``tether serve`` as a real process (SQLite, and PostgreSQL in a database of its
own), driven through the SDK and through the ``tether`` command as a user would.

Jobs run on real Huey consumers: the one inside ``tether serve`` (SQLite queue in the data
dir), or separate ``tether worker`` processes (Redis queue, or the SQLite queue shared through
the data dir) with the embedded worker turned off.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL, _psycopg
from tether import Client
from tether.sdk import (
    AuthenticationError,
    ConflictError,
    Dataset,
    InvalidError,
    JobTimeoutError,
    NotFoundError,
    TetherAPIError,
)

pytestmark = pytest.mark.e2e

TETHER = str(Path(sys.executable).parent / "tether")
KEY_RE = re.compile(r"tth_[A-Za-z0-9_-]{20,}")
START_TIMEOUT = 90.0  # seconds; generous: a loaded 2-core machine starts slowly


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any TETHER_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(extra)
    return env


def run_cli(
    env: dict[str, str], *args: str, input: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TETHER, *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def with_item_errors(
    result: subprocess.CompletedProcess[str],
) -> subprocess.CompletedProcess[str]:
    """Completed with per-item errors: exit code 2, and no traceback."""
    assert result.returncode == 2, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def stop(proc: subprocess.Popen[Any], timeout: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


@dataclass
class Server:
    """A running ``tether serve`` and the local configuration it was started with."""

    proc: subprocess.Popen[Any]
    url: str
    data_dir: Path
    config: dict[str, str]  # TETHER_* settings of the server (admin commands use the same)
    log: Path
    key: str = ""
    email: str = ""
    extra: list[subprocess.Popen[Any]] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def admin(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """An admin command (users, keys, migrate) on the server's local configuration."""
        return run_cli(clean_env(**self.config), *args, input=input, cwd=self.data_dir)

    def cli(self, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        """A data command talking to the server through TETHER_URL / TETHER_API_KEY."""
        env = clean_env(TETHER_URL=self.url, TETHER_API_KEY=key or self.key)
        return run_cli(env, *args, cwd=self.data_dir)

    def client(self, key: str | None = None) -> Client:
        return Client(self.url, api_key=key or self.key, timeout=30)

    def start_worker(self) -> subprocess.Popen[Any]:
        log = (self.data_dir / f"worker-{len(self.extra)}.log").open("wb")
        proc = subprocess.Popen(
            [TETHER, "worker"],
            env=clean_env(**self.config),
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.extra.append(proc)
        return proc

    def new_account(self) -> tuple[str, str]:
        """An admin in an organization of its own, made with the CLI; returns (email, key)."""
        tag = uuid.uuid4().hex[:10]
        email = f"e2e-{tag}@example.com"
        ok(
            self.admin(
                "users",
                "create",
                email,
                "--org",
                f"org-{tag}",
                "--admin",
                "--password-stdin",
                input="pw\n",
            )
        )
        out = ok(self.admin("keys", "create", email)).stdout
        assert KEY_RE.fullmatch(out.strip()) and out.count("\n") == 1, out
        return email, out.strip()


def wait_healthy(proc: subprocess.Popen[Any], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tether serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop(proc)
    pytest.fail(f"tether serve did not answer in {START_TIMEOUT}s:\n{log.read_text()}")


@contextmanager
def running_server(data_dir: Path, *args: str, **config: str) -> Iterator[Server]:
    port = free_port()
    config = {"TETHER_DATA_DIR": str(data_dir), **config}
    log = data_dir / f"serve-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [TETHER, "serve", "--port", str(port), *args],
            env=clean_env(**config),
            cwd=data_dir,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", data_dir, config, log)
    try:
        wait_healthy(proc, server.url, log)
        yield server
    finally:
        for worker in server.extra:
            stop(worker)
        code = stop(proc)
        # uvicorn shuts down gracefully, then dies of the SIGTERM it caught.
        assert code in (0, -signal.SIGTERM), f"tether serve exited with {code}:\n{server.output()}"


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    name = f"tether_e2e_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_psycopg(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - a machine without PostgreSQL
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable: {exc}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per database for the module, with one account made through the CLI."""
    data_dir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    with ExitStack() as stack:
        config = {}
        if request.param == "postgresql":
            config["TETHER_DATABASE_URL"] = stack.enter_context(fresh_pg_database())
        srv = stack.enter_context(running_server(data_dir, **config))
        srv.email, srv.key = srv.new_account()
        yield srv


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Client]:
    with server.client() as c:
        yield c


# Commands whose behaviour does not depend on the database run against the SQLite server only:
# every CLI process costs about a second.
SQLITE_ONLY = pytest.mark.parametrize("server", ["sqlite"], indirect=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def labelbox_rows(prefix: str, n: int) -> list[dict[str, Any]]:
    """Rows with metadata (split cycling train/valid/test) and an attachment; every 10th a
    video."""
    rows = []
    for i in range(n):
        ext = "mp4" if i % 10 == 9 else "jpg"
        rows.append(
            {
                "row_data": f"s3://bucket/{prefix}/{i:05d}.{ext}",
                "global_key": f"{prefix}-{i:05d}",
                "external_id": f"ext-{i}",
                "metadata_fields": [
                    {"name": "split", "value": ("train", "valid", "test")[i % 3]},
                    {"name": "tag", "value": f"tag{i % 4}"},
                    {"name": "captureDateTime", "value": f"2024-05-{1 + i % 28:02d}T12:00:00Z"},
                ],
                "attachments": [{"type": "RAW_TEXT", "value": f"note {i}"}],
            }
        )
    return rows


def write_ndjson(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def raw_error(
    server: Server, method: str, path: str, key: str | None = None, **kw: Any
) -> dict[str, Any]:
    """What the server itself answers, to compare with what the SDK raised."""
    r = httpx.request(
        method,
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {key or server.key}"},
        **kw,
    )
    assert r.status_code >= 400, r.text
    return {"status": r.status_code, **r.json()["error"]}


# --- the SDK ---------------------------------------------------------------------------------


def test_sdk_import_runs_on_the_embedded_consumer_and_rows_are_found(client: Client) -> None:
    prefix = unique("sdk")
    rows = labelbox_rows(prefix, 250)
    dataset = client.create_dataset(prefix, "made by the SDK")
    job = dataset.create_data_rows(rows)
    # In Huey's immediate mode the job would have finished before the answer; a real consumer
    # picks it up later.
    assert job.status in ("queued", "running"), job
    assert job.wait_till_done(timeout=60) is job
    assert job.status == "completed", job
    assert job.counts == {"created": 250, "updated": 0, "failed": 0}
    assert job.progress == {"done": 250, "total": 250}
    assert job.format == "ndjson/labelbox"
    assert job.errors == []

    # Several pages, with a metadata filter and with a media type filter.
    train = list(dataset.data_rows(page_size=40, metadata={"split": "train"}))
    assert [r["global_key"] for r in train] == [
        r["global_key"] for i, r in enumerate(rows) if i % 3 == 0
    ]
    assert len(train) == 84
    ids = [r["id"] for r in train]
    assert ids == sorted(set(ids))
    videos = list(dataset.data_rows(page_size=7, media_type="VIDEO"))
    assert [r["global_key"] for r in videos] == [r["global_key"] for r in rows[9::10]]
    assert {r["media_type"] for r in videos} == {"VIDEO"}
    late = list(
        dataset.data_rows(
            page_size=10, metadata={"captureDateTime": {"gte": "2024-05-25T00:00:00Z"}}
        )
    )
    assert {r["global_key"] for r in late} == {
        r["global_key"] for i, r in enumerate(rows) if 1 + i % 28 >= 25
    }

    keys = [rows[0]["global_key"], "no-such-key", rows[5]["global_key"]]
    found = client.get_data_row_ids_for_global_keys(keys)
    assert [f["global_key"] for f in found] == keys
    assert found[1]["data_row_id"] is None
    row = client.get_data_row(found[2]["data_row_id"])
    assert row["global_key"] == rows[5]["global_key"]
    assert row["row_data"] == rows[5]["row_data"]
    assert row["attachments"] == rows[5]["attachments"]
    assert [(m["name"], m["value"]) for m in row["metadata_fields"]] == [
        ("split", "test"),
        ("tag", "tag1"),
        ("captureDateTime", "2024-05-06T12:00:00Z"),
    ]

    assert sum(1 for _ in dataset.export()) == 250


def _dataset_of(client: Client, n: int) -> tuple[Dataset, list[dict[str, Any]], list[int]]:
    prefix = unique("rows")
    dataset = client.create_dataset(prefix)
    rows = labelbox_rows(prefix, n)
    assert dataset.create_data_rows(rows).wait_till_done(timeout=60).counts["created"] == n
    return dataset, rows, [r["id"] for r in dataset.data_rows()]


def test_sdk_updates_rows_and_global_keys(client: Client) -> None:
    dataset, _rows, ids = _dataset_of(client, 3)
    updated = client.update_data_row(ids[0], external_id="changed")
    assert updated["external_id"] == "changed"
    assert client.get_data_row(ids[0])["external_id"] == "changed"
    with pytest.raises(InvalidError) as caught:
        client.update_data_row(ids[0], media_type="HOLOGRAM")
    assert "HOLOGRAM" in caught.value.message

    new_key = unique("new-key")
    assigned = client.assign_global_keys([{"data_row_id": ids[1], "global_key": new_key}])
    assert assigned[0]["error"] is None, assigned
    assert client.get_data_row(ids[1])["global_key"] == new_key
    cleared = client.clear_global_keys([new_key])
    assert cleared[0]["error"] is None, cleared
    assert client.get_data_row(ids[1])["global_key"] is None
    assert dataset.delete() == 3
    with pytest.raises(NotFoundError):
        client.get_dataset(dataset.id)


def test_sdk_deletes_rows(client: Client) -> None:
    dataset, rows, ids = _dataset_of(client, 5)
    client.delete_data_row(ids[0])
    with pytest.raises(NotFoundError):
        client.get_data_row(ids[0])
    results = client.delete_data_rows(ids=[ids[1], ids[0]], global_keys=[rows[2]["global_key"]])
    assert [r["deleted"] for r in results] == [True, False, True]
    assert [r["global_key"] for r in dataset.data_rows()] == [r["global_key"] for r in rows[3:]]


def test_sdk_imports_a_generator_and_a_file_with_errors(client: Client, tmp_path: Path) -> None:
    prefix = unique("gen")
    dataset = client.create_dataset(prefix)
    job = dataset.create_data_rows(r for r in labelbox_rows(prefix, 30))
    assert job.wait_till_done(timeout=60).counts["created"] == 30

    path = tmp_path / "rows.csv"
    path.write_text(
        "row_data,global_key,split\n"
        f"https://example.com/a.png,{prefix}-csv-a,train\n"
        f"https://example.com/b.png,{prefix}-csv-b,nope\n"
        f"https://example.com/c.png,{prefix}-00001,valid\n"
    )
    job = dataset.create_data_rows(path).wait_till_done(timeout=60)
    assert job.status == "completed_with_errors"
    assert job.format == "csv/labelbox"
    assert job.counts == {"created": 1, "updated": 0, "failed": 2}
    errors = job.errors
    assert [(e["index"], e["code"], e["global_key"]) for e in errors] == [
        (1, "invalid_metadata", f"{prefix}-csv-b"),
        (2, "global_key_exists", f"{prefix}-00001"),
    ]
    assert "split" in errors[0]["message"]


def test_sdk_errors_are_typed_and_carry_the_server_message(client: Client, server: Server) -> None:
    cases: list[tuple[type[TetherAPIError], Any, tuple[str, str, dict[str, Any]]]] = [
        (
            NotFoundError,
            lambda: client.get_dataset("no-such-dataset"),
            ("GET", "/datasets/no-such-dataset", {}),
        ),
        (
            NotFoundError,
            lambda: client.get_data_row(987654321),
            ("GET", "/data-rows/987654321", {}),
        ),
        (NotFoundError, lambda: client.get_job("0" * 32), ("GET", "/jobs/" + "0" * 32, {})),
        (
            InvalidError,
            lambda: client.create_metadata_field("x", "colour"),
            ("POST", "/metadata-schema", {"json": {"name": "x", "kind": "colour"}}),
        ),
        (
            InvalidError,
            lambda: next(client.data_rows(metadata={"nosuchfield": "a"})),
            ("GET", "/data-rows", {"params": {"metadata": "nosuchfield:eq:a"}}),
        ),
    ]
    for cls, call, (method, path, kw) in cases:
        with pytest.raises(cls) as caught:
            call()
        expected = raw_error(server, method, path, **kw)
        assert (caught.value.status, caught.value.code, caught.value.message) == (
            expected["status"],
            expected["code"],
            expected["message"],
        )
        assert caught.value.message in str(caught.value)

    name = unique("twice")
    client.create_dataset(name)
    with pytest.raises(ConflictError) as conflict:
        client.create_dataset(name)
    assert conflict.value.status == 409 and name in conflict.value.message

    with pytest.raises(AuthenticationError) as auth, server.client(key="tth_" + "x" * 43) as bad:
        bad.datasets()
    assert auth.value.status == 401
    assert (
        auth.value.message
        == raw_error(server, "GET", "/datasets", key="tth_" + "x" * 43)["message"]
    )


def test_metadata_schema_through_the_sdk(client: Client) -> None:
    name = unique("weather")
    created = client.create_metadata_field(name, "enum", options=["sunny", "rain"])
    assert created["kind"] == "enum"
    changed = client.update_metadata_field(name, add_options=["snow"])
    assert [o["name"] for o in changed["options"]] == ["sunny", "rain", "snow"]
    assert name in [f["name"] for f in client.metadata_schema()]
    dataset = client.create_dataset(unique("meta"))
    job = dataset.create_data_rows(
        [
            {"row_data": "s3://b/1.jpg", "metadata_fields": [{"name": name, "value": "snow"}]},
            {"row_data": "s3://b/2.jpg", "metadata_fields": [{"name": name, "value": "hail"}]},
        ]
    ).wait_till_done(timeout=60)
    assert job.counts == {"created": 1, "updated": 0, "failed": 1}
    assert job.errors[0]["code"] == "invalid_metadata"
    assert [r["row_data"] for r in dataset.data_rows(metadata={name: "snow"})] == ["s3://b/1.jpg"]
    with pytest.raises(ConflictError) as in_use:
        client.delete_metadata_field(name)
    assert "still use" in in_use.value.message
    unused = unique("unused")
    client.create_metadata_field(unused, "number")
    client.delete_metadata_field(unused)
    assert unused not in [f["name"] for f in client.metadata_schema()]


def test_same_idempotency_key_twice_makes_one_job(server: Server, client: Client) -> None:
    dataset = client.create_dataset(unique("idem"))
    prefix = unique("idem")
    key = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {server.key}", "Idempotency-Key": key}
    url = f"{server.url}/api/v1/datasets/{dataset.id}/data-rows"
    body = b"".join(orjson.dumps(r) + b"\n" for r in labelbox_rows(prefix, 20))
    first = httpx.post(url, content=body, headers=headers)
    assert first.status_code == 202, first.text
    again = httpx.post(url, content=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    # The key with another body is refused, and says so.
    other = httpx.post(url, content=orjson.dumps(labelbox_rows(prefix + "x", 5)), headers=headers)
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    job = client.get_job(first.json()["id"]).wait_till_done(timeout=60)
    assert job.counts["created"] == 20
    assert sum(1 for _ in dataset.data_rows()) == 20
    assert [j.id for j in client.jobs(limit=500) if j._data["dataset_id"] == dataset.id] == [job.id]


class DropFirstResponse:
    """A TCP proxy in front of the server that forwards the first connection's request but
    closes that connection instead of passing the server's answer back: the answer is lost
    after the server acted on the request (the case an idempotent retry is for)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.dropped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            drop = self.connections == 1
            threading.Thread(
                target=self._pump, args=(downstream, upstream, False), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, downstream, drop), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, drop: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if drop:
                    self.dropped.set()
                    break
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.listener.close()


def test_sdk_retry_after_a_lost_answer_creates_nothing_twice(
    server: Server, client: Client
) -> None:
    dataset = client.create_dataset(unique("retry"))
    prefix = unique("retry")
    proxy = DropFirstResponse(int(server.url.rsplit(":", 1)[1]))
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", api_key=server.key, retries=2) as flaky:
            job = Dataset(flaky, dataset._data).create_data_rows(labelbox_rows(prefix, 40))
            assert proxy.dropped.is_set() and proxy.connections == 2
            job.wait_till_done(timeout=60)
    finally:
        proxy.close()
    assert job.counts == {"created": 40, "updated": 0, "failed": 0}
    assert [j.id for j in client.jobs(limit=500) if j._data["dataset_id"] == dataset.id] == [job.id]
    assert sum(1 for _ in dataset.data_rows()) == 40


def test_sdk_retry_of_a_generator_returns_the_first_job(server: Server, client: Client) -> None:
    """A one-shot iterator cannot be sent again, but the server already holds the job: the SDK
    asks for it by its idempotency key."""
    dataset = client.create_dataset(unique("retry-gen"))
    prefix = unique("retry-gen")
    proxy = DropFirstResponse(int(server.url.rsplit(":", 1)[1]))
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", api_key=server.key, retries=2) as flaky:
            job = Dataset(flaky, dataset._data).create_data_rows(iter(labelbox_rows(prefix, 40)))
            job.wait_till_done(timeout=60)
    finally:
        proxy.close()
    assert job.counts == {"created": 40, "updated": 0, "failed": 0}
    assert [j.id for j in client.jobs(limit=500) if j._data["dataset_id"] == dataset.id] == [job.id]


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_import_shows_progress_summary_and_writes_every_error(
    server: Server, tmp_path: Path
) -> None:
    prefix = unique("cli")
    good = labelbox_rows(prefix, 30)
    bad: list[tuple[int, bytes, str]] = [
        (30, b'{"row_data": "s3://b/x.jpg", "global_key": ', "malformed_json"),
        (31, orjson.dumps({"global_key": f"{prefix}-nodata"}), "missing_row_data"),
        (
            32,
            orjson.dumps(
                {
                    "row_data": "s3://b/y.jpg",
                    "metadata_fields": [{"name": "split", "value": "later"}],
                }
            ),
            "invalid_metadata",
        ),
        (33, orjson.dumps({**good[3], "row_data": "s3://b/dupe.jpg"}), "duplicate_global_key"),
        (
            34,
            orjson.dumps({"row_data": "s3://b/z.jpg", "media_type": "HOLOGRAM"}),
            "invalid_media_type",
        ),
    ]
    path = tmp_path / "rows.ndjson"
    path.write_bytes(
        b"".join(orjson.dumps(r) + b"\n" for r in good)
        + b"".join(line + b"\n" for _i, line, _c in bad)
    )
    errors_file = tmp_path / "errors.ndjson"
    errors_file.write_text("stale content of an earlier run\n")

    result = with_item_errors(
        server.cli(
            "import", str(path), "--dataset", prefix, "--create", "--errors-file", str(errors_file)
        )
    )
    err = result.stderr
    assert f"created dataset {prefix}" in err
    assert re.search(r"import \(rows, ndjson/labelbox\).*35/35", err), err
    assert re.search(
        r"completed_with_errors\s+format ndjson/labelbox\s+created 30\s+updated 0\s+failed 5", err
    ), err
    assert "item 30: malformed_json line 31" in err
    assert f"item 33 ({prefix}-00003): duplicate_global_key" in err
    assert f"wrote 5 errors to {errors_file}" in " ".join(err.split())
    written = read_ndjson(errors_file)
    assert [(e["index"], e["code"]) for e in written] == [(i, c) for i, _l, c in bad]
    assert written[3]["global_key"] == f"{prefix}-00003"
    assert all(e["message"] for e in written)

    # Without --errors-file: the first errors, and a stale errors file is never left behind.
    again = with_item_errors(
        server.cli("import", str(path), "--dataset", prefix, "--errors-file", str(errors_file))
    )
    assert "created 0" in again.stderr and "failed 35" in again.stderr
    assert "… and 25 more" not in again.stderr
    assert len(read_ndjson(errors_file)) == 35
    clean = write_ndjson(tmp_path / "clean.ndjson", labelbox_rows(unique("clean"), 3))
    done = ok(
        server.cli("import", str(clean), "--dataset", prefix, "--errors-file", str(errors_file))
    )
    assert "completed " in done.stderr and "failed 0" in done.stderr
    assert errors_file.read_bytes() == b""
    third = with_item_errors(server.cli("import", str(path), "--dataset", prefix))
    assert "failed 35" in third.stderr and "… and 25 more (use --errors-file)" in third.stderr


def test_export_then_import_round_trips_through_the_cli(
    server: Server, client: Client, tmp_path: Path
) -> None:
    prefix = unique("trip")
    source = client.create_dataset(prefix)
    rows: list[dict[str, Any]] = labelbox_rows(prefix, 12)
    rows[0]["media_attributes"] = {"width": 640, "height": 480, "mimeType": "image/jpeg"}
    rows += [
        {"row_data": "Just a sentence.", "global_key": f"{prefix}-text"},
        {
            "row_data": {
                "pdf_url": "https://example.com/a.pdf",
                "text_layer_url": "https://example.com/a.json",
            },
            "global_key": f"{prefix}-pdf",
        },
        {
            "data": {"image": "s3://bucket/ls/1.jpg", "caption": "a cat"},
            "annotations": [{"result": [{"value": {"choices": ["cat"]}}]}],
            "predictions": [],
        },
        {"row_data": "s3://bucket/plain.png"},
    ]
    assert source.create_data_rows(rows).wait_till_done(timeout=60).counts["created"] == 16

    first = tmp_path / "first.ndjson"
    assert f"exported 16 rows to {first}" in " ".join(
        ok(server.cli("export", prefix, "-o", str(first))).stderr.split()
    )
    exported = read_ndjson(first)
    assert [r["global_key"] for r in exported[:12]] == [r["global_key"] for r in rows[:12]]
    assert exported[14]["annotations"] == rows[14]["annotations"]

    ok(server.cli("datasets", "delete", prefix, "--yes"))
    copy = unique("copy")
    result = ok(server.cli("import", str(first), "--dataset", copy, "--create"))
    assert re.search(
        r"completed\s+format ndjson/labelbox\s+created 16\s+updated 0\s+failed 0", result.stderr
    ), result.stderr

    second = tmp_path / "second.ndjson"
    ok(server.cli("export", copy, "-o", str(second)))
    volatile = ("id", "dataset_id", "created_at", "updated_at")

    def stable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in volatile} for r in items]

    assert stable(read_ndjson(second)) == stable(exported)

    upserted = ok(server.cli("import", str(second), "--dataset", copy, "--upsert"))
    assert re.search(r"created 2\s+updated 14\s+failed 0", upserted.stderr), (
        upserted.stderr
    )  # 2 rows have no key: new rows
    stdout_export = ok(server.cli("export", copy))
    lines = [orjson.loads(x) for x in stdout_export.stdout.splitlines()]
    assert stable(lines[:16]) == stable(exported)


@SQLITE_ONLY
def test_cli_data_commands(server: Server, tmp_path: Path) -> None:
    name = unique("cmds")
    assert (
        f"created dataset {name}"
        in ok(server.cli("datasets", "create", name, "--description", "d")).stderr
    )
    assert name in ok(server.cli("datasets", "list")).stdout
    rows = labelbox_rows(name, 9)
    ok(server.cli("import", str(write_ndjson(tmp_path / "r.ndjson", rows)), "--dataset", name))
    shown = orjson.loads(ok(server.cli("datasets", "get", name)).stdout)
    assert shown["name"] == name and shown["row_count"] == 9

    listed = ok(
        server.cli("rows", "list", "--dataset", name, "--metadata", "split:eq:valid")
    ).stdout.splitlines()
    assert [orjson.loads(x)["global_key"] for x in listed] == [r["global_key"] for r in rows[1::3]]
    assert (
        len(ok(server.cli("rows", "list", "--dataset", name, "--limit", "2")).stdout.splitlines())
        == 2
    )
    lookup = ok(
        server.cli("rows", "lookup", rows[0]["global_key"], "missing-key")
    ).stdout.splitlines()
    row_id = int(lookup[0].split("\t")[1])
    assert lookup[1] == "missing-key\tnot found"
    assert (
        orjson.loads(ok(server.cli("rows", "get", str(row_id))).stdout)["global_key"]
        == rows[0]["global_key"]
    )

    field_name = unique("colour")
    ok(
        server.cli(
            "schema", "create", field_name, "--kind", "enum", "--option", "red", "--option", "blue"
        )
    )
    schema = ok(server.cli("schema", "list")).stdout
    assert field_name in schema and "red, blue" in schema and "split (reserved)" in schema
    ok(server.cli("schema", "delete", field_name))
    assert field_name not in ok(server.cli("schema", "list")).stdout

    renamed = unique("renamed")
    ok(server.cli("datasets", "rename", name, renamed))
    missing = server.cli("datasets", "get", name)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert f"no dataset named {name!r}" in missing.stderr
    gone = ok(server.cli("datasets", "delete", renamed, "--yes"))
    assert f"deleted {renamed} and 9 rows" in gone.stderr
    nofile = server.cli("import", str(tmp_path / "absent.ndjson"), "--dataset", renamed)
    assert nofile.returncode == 1 and "Traceback" not in nofile.stderr


@SQLITE_ONLY
def test_cli_deletes_rows(server: Server, tmp_path: Path) -> None:
    name = unique("del")
    rows = labelbox_rows(name, 3)
    ok(
        server.cli(
            "import", str(write_ndjson(tmp_path / "r.ndjson", rows)), "--dataset", name, "--create"
        )
    )
    lookup = ok(server.cli("rows", "lookup", rows[0]["global_key"])).stdout
    row_id = int(lookup.split("\t")[1])
    deleted = ok(
        server.cli("rows", "delete", "--id", str(row_id), "--global-key", rows[1]["global_key"])
    )
    assert deleted.stdout.splitlines() == [
        f"{row_id}\tdeleted",
        f"{rows[1]['global_key']}\tdeleted",
    ]
    missing = with_item_errors(server.cli("rows", "delete", "--id", str(row_id))).stdout
    assert missing.strip() == f"{row_id}\tnot found"


@SQLITE_ONLY
def test_cli_reports_a_bad_key_and_an_unreachable_server(server: Server) -> None:
    bad = server.cli("datasets", "list", key="tth_" + "y" * 43)
    assert bad.returncode == 1 and "invalid or revoked API key" in bad.stderr
    assert "Traceback" not in bad.stderr
    env = clean_env(TETHER_URL=f"http://127.0.0.1:{free_port()}", TETHER_API_KEY=server.key)
    down = run_cli(env, "datasets", "list")
    assert down.returncode == 1 and "cannot reach the server" in down.stderr
    assert "Traceback" not in down.stderr
    nokey = run_cli(clean_env(TETHER_URL=server.url), "datasets", "list")
    assert nokey.returncode == 1 and "set TETHER_API_KEY" in nokey.stderr
    assert "api_key=" not in nokey.stderr


@SQLITE_ONLY
def test_keys_are_shown_once_listed_and_revocable(server: Server) -> None:
    email, key = server.new_account()
    with server.client(key) as c:
        assert c.datasets() == []
        listing = ok(server.admin("keys", "list", email)).stdout.splitlines()
        assert len(listing) == 1 and listing[0].split("\t")[2] == key[:8] + "…"
        assert "active" in listing[0] and key not in listing[0]
        ok(server.admin("keys", "revoke", listing[0].split("\t")[0]))
        with pytest.raises(AuthenticationError) as caught:
            c.datasets()
    assert caught.value.message == "invalid or revoked API key"
    taken = server.admin("users", "create", email, "--org", "x", "--password-stdin", input="pw\n")
    assert taken.returncode == 1 and "exists already" in taken.stderr
    empty = server.admin(
        "users", "create", "e@example.com", "--org", "x", "--password-stdin", input="\n"
    )
    assert empty.returncode == 1 and "password is empty" in empty.stderr


# --- tether serve --demo, and separate workers ---------------------------------------------


def test_serve_demo_prints_a_working_url_and_key(tmp_path: Path) -> None:
    with running_server(tmp_path, "--demo") as srv:
        out = srv.output()
        url = re.search(r"export TETHER_URL=(\S+)", out)
        key = re.search(r"export TETHER_API_KEY=(\S+)", out)
        assert url and key, out
        assert url.group(1) == srv.url
        assert f"tether is listening on {srv.url}" in out
        with Client(url.group(1), api_key=key.group(1)) as c:
            demo = c.get_dataset("demo")
            rows = list(demo.data_rows(page_size=5))
            assert len(rows) == 14
            assert {r["media_type"] for r in rows} == {"IMAGE", "TEXT", "PDF"}
        env = clean_env(TETHER_URL=url.group(1), TETHER_API_KEY=key.group(1))
        train = ok(
            run_cli(env, "rows", "list", "--dataset", "demo", "--metadata", "split:eq:train")
        )
        assert len(train.stdout.splitlines()) == 4
    # A second start on the same data dir keeps the same key and dataset.
    with running_server(tmp_path, "--demo") as again:
        assert f"export TETHER_API_KEY={key.group(1)}" in again.output()
        with Client(again.url, api_key=key.group(1)) as c:
            assert [d.name for d in c.datasets()] == ["demo"]


def _redis_db() -> int:
    """A Redis database of its own per xdist worker, far from the usual 0."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return 15 - int(worker.removeprefix("gw") or 0) % 6


@pytest.fixture(params=["redis+postgresql", "sqlite-queue+sqlite"])
def scaled_out(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A server without embedded workers; jobs wait for a separate ``tether worker``."""
    with ExitStack() as stack:
        config = {"TETHER_EMBEDDED_WORKER": "false"}
        if request.param == "redis+postgresql":
            import redis

            db = _redis_db()
            queue = f"redis://127.0.0.1:6379/{db}"
            try:
                conn = redis.Redis.from_url(queue)
                conn.ping()
            except redis.RedisError as exc:  # pragma: no cover
                pytest.skip(f"no Redis at 127.0.0.1:6379 ({exc}); the Redis queue is untested")
            conn.flushdb()
            stack.callback(conn.close)
            stack.callback(conn.flushdb)
            config["TETHER_QUEUE_URL"] = queue
            config["TETHER_DATABASE_URL"] = stack.enter_context(fresh_pg_database())
        srv = stack.enter_context(running_server(tmp_path, **config))
        srv.email, srv.key = srv.new_account()
        yield srv


def test_jobs_wait_for_a_separate_worker(scaled_out: Server) -> None:
    srv = scaled_out
    with srv.client() as client:
        dataset = client.create_dataset("work")
        job = dataset.create_data_rows(labelbox_rows("w", 120))
        with pytest.raises(JobTimeoutError):
            job.wait_till_done(timeout=1.0, poll=0.2)
        assert job.status == "queued"
        if "TETHER_QUEUE_URL" in srv.config:
            import redis

            conn = redis.Redis.from_url(srv.config["TETHER_QUEUE_URL"])
            assert conn.llen("huey.redis.tether") == 1
            conn.close()
        worker = srv.start_worker()
        job.wait_till_done(timeout=60, poll=0.2)
        assert job.status == "completed", job
        assert job.counts["created"] == 120
        assert sum(1 for _ in dataset.data_rows()) == 120
        # A second job goes to the same worker while the server goes on answering.
        second = dataset.create_data_rows(labelbox_rows("v", 10)).wait_till_done(timeout=60)
        assert second.counts["created"] == 10
        assert worker.poll() is None
    assert stop(worker) == 0
