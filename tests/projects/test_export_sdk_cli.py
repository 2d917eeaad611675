"""The SDK's ``Project.export`` and ``tether projects export``: what the API streams, as
task dicts or written to a file (only when complete), in every format."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant
from tests.projects.test_export import labeled_project
from tether import Client


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
