"""Annotations saved through the API reach the project's auto-export targets by themselves:
created, changed and deleted, each save queues an export that runs once the save has
committed; a target with auto_export off waits for a manual sync."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from tests.projects.conftest import BOXES, new_project
from tests.projects.targets_setup import REGION, Api, imported_rows, make_api, target


@pytest.fixture(scope="module")
def api(settings: Any, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from make_api(settings, engine, tmp_path_factory)


def test_saves_export_themselves(api: Api) -> None:
    tenant = api.tenant()
    project = new_project(tenant, "auto", BOXES)
    rows = imported_rows(tenant, 2)
    r = tenant.post(f"/projects/{project['id']}/tasks", json={"data_row_ids": rows})
    assert r.status_code == 202, r.text
    auto, manual = api.folder(), api.folder()
    target(
        tenant,
        {"type": "local", "project_id": project["id"], "path": str(auto),
         "can_delete_objects": True},
    )  # fmt: skip
    off = target(
        tenant,
        {"type": "local", "project_id": project["id"], "path": str(manual), "auto_export": False},
    )
    path = f"/projects/{project['id']}/tasks/{rows[0]}/annotations"
    made = tenant.post(path, json={"result": [REGION], "lead_time": 3.5})
    assert made.status_code == 201, made.text
    annotation_id = made.json()["id"]
    written = auto / str(annotation_id)
    body = orjson.loads(written.read_bytes())
    assert body["id"] == annotation_id and body["result"] == [REGION]
    assert body["task"]["id"] == rows[0] and body["task"]["data"] == {
        "image": "s3://bucket/img/0.jpg"
    }
    assert list(manual.iterdir()) == []
    # A change is written again; a delete removes the object (can_delete_objects).
    changed = {**REGION, "value": {**REGION["value"], "rectanglelabels": ["Dog"]}}
    r = tenant.patch(f"/annotations/{annotation_id}", json={"result": [changed]})
    assert r.status_code == 200, r.text
    assert orjson.loads(written.read_bytes())["result"][0]["value"]["rectanglelabels"] == ["Dog"]
    assert tenant.delete(f"/annotations/{annotation_id}").status_code == 204
    assert not written.exists()
    # The manual target gets what is there when it syncs.
    skip = tenant.post(f"/projects/{project['id']}/tasks/{rows[1]}/annotations",
                       json={"result": [], "was_cancelled": True}).json()  # fmt: skip
    assert (auto / str(skip["id"])).exists() and list(manual.iterdir()) == []
    job = tenant.post(f"/storages/{off['id']}/sync").json()
    assert tenant.get(f"/jobs/{job['id']}").json()["counts"]["written"] == 1
    assert orjson.loads((manual / str(skip["id"])).read_bytes())["was_cancelled"] is True


def test_a_refused_save_queues_nothing(api: Api) -> None:
    tenant = api.tenant()
    project = new_project(tenant, "refused", BOXES)
    rows = imported_rows(tenant, 1)
    tenant.post(f"/projects/{project['id']}/tasks", json={"data_row_ids": rows})
    folder = api.folder()
    target(tenant, {"type": "local", "project_id": project["id"], "path": str(folder)})
    bad = {**REGION, "from_name": "nope"}
    path = f"/projects/{project['id']}/tasks/{rows[0]}/annotations"
    assert tenant.post(path, json={"result": [bad]}).status_code == 422
    jobs = tenant.get("/jobs", params={"kind": "export"}).json()["items"]
    assert jobs == []
    assert list(folder.iterdir()) == []
