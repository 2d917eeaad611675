"""The SDK's ``Project.export`` and ``tether projects export``: what the API streams, as
task dicts or written to a file (only when complete), in every format."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant
from tests.projects.test_export import labeled_project
from tether import Client, Project, TetherAPIError

PROJECT = {
    "name": "p",
    "description": "",
    "label_config": "<View/>",
    "created_by": None,
    "created_at": "2026-12-01T00:00:00+00:00",
    "updated_at": "2026-12-01T00:00:00+00:00",
    "task_count": 3,
    "task_counts": {"unlabeled": 3, "labeled": 0, "skipped": 0},
}


def test_the_sdk_streams_the_tasks_the_api_exports(
    engine: Engine, tenant: Tenant, sdk: Client
) -> None:
    project, ids, _ = labeled_project(engine, tenant)
    wanted = tenant.get(f"/projects/{project['id']}/export").json()
    p = sdk.get_project(project["name"])
    assert list(p.export()) == wanted
    assert list(p.export("ndjson")) == wanted
    assert [t["id"] for t in p.export(status=["skipped", "labeled"])] == ids[:2]
    assert [t["id"] for t in p.export("ndjson", status="unlabeled")] == ids[2:]
    with pytest.raises(ValueError, match="path="):
        p.export("coco")
    with pytest.raises(ValueError, match="format"):
        p.export("csv")


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_the_sdk_writes_the_answer_as_it_comes(
    engine: Engine, tenant: Tenant, sdk: Client, tmp_path: Path, fmt: str
) -> None:
    project, _, _ = labeled_project(engine, tenant)
    wanted = tenant.get(f"/projects/{project['id']}/export", params={"format": fmt}).content
    seen: list[tuple[int, int | None]] = []
    target = tmp_path / f"out.{fmt}"
    count = sdk.get_project(project["id"]).export(
        fmt, target, on_progress=lambda d, t: seen.append((d, t))
    )
    assert (count, target.read_bytes(), seen[-1]) == (4, wanted, (4, 4))
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no partial file left
    sink = io.BytesIO()
    assert sdk.get_project(project["id"]).export(fmt, sink) == 4
    assert sink.getvalue() == wanted


def test_the_sdk_writes_converted_exports(
    engine: Engine, tenant: Tenant, sdk: Client, tmp_path: Path
) -> None:
    project, _, region = labeled_project(engine, tenant)
    p = sdk.get_project(project["id"])
    assert p.export("coco", tmp_path / "coco.json") == 1
    coco = orjson.loads((tmp_path / "coco.json").read_bytes())
    (a,) = coco["annotations"]
    v = region["value"]
    assert a["bbox"] == pytest.approx(
        [v["x"] * 20, v["y"] * 10, v["width"] * 20, v["height"] * 10]  # 2000 x 1000 pixels
    )
    assert p.export("yolo", tmp_path / "yolo.zip") == 1
    with zipfile.ZipFile(tmp_path / "yolo.zip") as z:
        assert "labels/0.txt" in z.namelist()


def test_the_cli_exports_to_a_file_or_standard_output(
    engine: Engine, tenant: Tenant, cli: Any, tmp_path: Path
) -> None:
    project, _, _ = labeled_project(engine, tenant)
    path = f"/projects/{project['id']}/export"
    out = tmp_path / "tasks.json"
    r = cli("projects", "export", project["name"], "-o", str(out))
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == tenant.get(path).content
    assert "exported 4 tasks" in r.output
    r = cli("projects", "export", str(project["id"]), "-o", "-", "--format", "ndjson")
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes == tenant.get(path, params={"format": "ndjson"}).content
    voc = tmp_path / "voc.zip"
    r = cli("projects", "export", project["name"], "-o", str(voc), "-f", "voc")
    assert r.exit_code == 0, r.output
    with zipfile.ZipFile(voc) as z:
        assert z.namelist() == ["Annotations/0.xml"]
    r = cli("projects", "export", project["name"], "-o", str(out), "--status", "skipped")
    assert r.exit_code == 0, r.output
    assert [t["id"] for t in orjson.loads(out.read_bytes())] == [
        t["id"] for t in tenant.get(path, params={"status": "skipped"}).json()
    ]


def test_a_failed_cli_export_leaves_no_file(tenant: Tenant, cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    r = cli("projects", "export", "no-such-project", "-o", str(out))
    assert r.exit_code == 1
    assert "no project named" in r.output
    assert list(tmp_path.iterdir()) == []
    r = cli("projects", "export", "whatever", "-o", str(out), "--format", "csv")
    assert r.exit_code != 0 and not out.exists()


class _Short(BaseHTTPRequestHandler):
    """A server whose export announces 3 tasks and sends 2 (its body given per path)."""

    bodies = {
        "/api/v1/projects/7/export": {
            "ndjson": b'{"id": 1}\n{"id": 2}\n',
            "json": b'[\n{"id": 1},\n{"id": 2}\n]\n',
        }
    }

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        fmt = "ndjson" if "format=ndjson" in query else "json"
        body = self.bodies[path][fmt]
        self.send_response(200)
        self.send_header("X-Tether-Export-Tasks", "3")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_a: Any) -> None:
        pass


@pytest.fixture
def short_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Short)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_the_sdk_refuses_an_export_shorter_than_announced(
    short_server: str, tmp_path: Path, fmt: str
) -> None:
    with Client(short_server, api_key="k") as client:
        p = Project._of(client, {**PROJECT, "id": 7})
        with pytest.raises(TetherAPIError) as caught:
            list(p.export(fmt))
        assert caught.value.code == "export_incomplete"
        assert "2 of the 3" in caught.value.message
        target = tmp_path / f"x.{fmt}"
        with pytest.raises(TetherAPIError, match="2 of the 3"):
            p.export(fmt, target)
        assert not target.exists() and list(tmp_path.iterdir()) == []
