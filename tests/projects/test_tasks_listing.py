"""Listing a project's tasks: filters (status and every data row filter), keyset pages, one
task, and resolved rows."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant
from tests.projects.conftest import new_project
from tests.projects.test_tasks import _name, add, images, rows_of
from tether.projects import labels, tasks

TASK_KEYS = {
    "data_row_id",
    "project_id",
    "status",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
    "lease_user_id",
    "lease_until",
    "imported_at",
    "created_at",
    "updated_at",
    "data_row",
}


@pytest.fixture
def world(engine: Engine, tenant: Tenant) -> dict[str, Any]:
    """Two datasets of images and videos with tags; a project holding about two thirds of
    the rows, some labeled and some skipped."""
    rng = random.Random(7)
    one, two = tenant.dataset(), tenant.dataset()
    rows = []
    for ds in (one, two):
        items = images(12)
        for i, item in enumerate(items):
            item["metadata_fields"] = [{"name": "tag", "value": rng.choice(["cat", "dog"])}]
            if i % 4 == 0:
                item.update(row_data=item["row_data"].replace(".jpg", ".mp4"), media_type="VIDEO")
        rows += rows_of(tenant, items, ds)
    project = new_project(tenant, _name())
    held = [r for i, r in enumerate(rows) if i % 3 != 2]
    add(tenant, project, data_row_ids=[r["id"] for r in held])
    base = {"org_id": tenant.org_id, "project_id": project["id"], "result": []}
    with engine.begin() as conn:
        labels.insert_annotations(
            conn,
            [
                {**base, "data_row_id": held[0]["id"]},
                {**base, "data_row_id": held[1]["id"]},
                {**base, "data_row_id": held[2]["id"], "was_cancelled": True},
            ],
        )
    return {"one": one, "two": two, "rows": rows, "held": held, "project": project}


def listed(tenant: Tenant, project: dict[str, Any], limit: int, **params: Any) -> list[int]:
    """Every task's data row id, page by page."""
    out: list[int] = []
    after = None
    while True:
        query = {**params, "limit": limit, **({"after": after} if after is not None else {})}
        r = tenant.get(f"/projects/{project['id']}/tasks", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        out += [t["data_row_id"] for t in page["items"]]
        after = page["next_cursor"]
        if after is None:
            return out


def data_rows(tenant: Tenant, **params: Any) -> list[int]:
    r = tenant.get("/data-rows", params={**params, "limit": 1000})
    assert r.status_code == 200, r.text
    return [row["id"] for row in r.json()["items"]]


@pytest.mark.parametrize("plan", ["tasks first", "rows first"])
def test_filters_and_pages_agree_with_data_row_listing(
    tenant: Tenant, world: dict[str, Any], plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if plan == "rows first":  # as in a project of many tasks: the row filters' index drives
        monkeypatch.setattr(tasks, "PROBE_TASKS", 0)
    project, held = world["project"], world["held"]
    in_project = {r["id"] for r in held}
    one = world["one"]["id"]
    gk = held[5]["global_key"]
    for params in (
        {},
        {"dataset_id": one},
        {"media_type": "VIDEO"},
        {"metadata": ["tag:eq:cat"]},
        {"metadata": ["tag:eq:dog"], "dataset_id": one},
        {"tag_contains": "do", "media_type": "IMAGE"},
        {"global_key": gk},
        {"global_key_prefix": held[0]["global_key"][:6]},
    ):
        expected = [i for i in data_rows(tenant, **params) if i in in_project]
        assert expected, params
        for limit in (1, 4, 1000):
            assert listed(tenant, project, limit, **params) == expected, (params, limit)
    assert listed(tenant, project, 3, status="labeled") == sorted(r["id"] for r in held[:2])
    assert listed(tenant, project, 3, status="skipped") == [held[2]["id"]]
    unlabeled = listed(tenant, project, 5, status="unlabeled")
    assert unlabeled == sorted(r["id"] for r in held[3:])
    cats = [i for i in data_rows(tenant, metadata=["tag:eq:cat"]) if i in set(unlabeled)]
    assert listed(tenant, project, 2, status="unlabeled", metadata=["tag:eq:cat"]) == cats
    named = [held[4]["id"], held[0]["id"], world["rows"][2]["id"]]  # the last is no task
    assert listed(tenant, project, 1, data_row_id=named) == sorted(named[:2])
    assert listed(tenant, project, 1, data_row_id=named, status="labeled") == [held[0]["id"]]
    assert listed(tenant, project, 9, metadata=["tag:eq:bird"]) == []


def test_a_task_shows_its_counts_and_its_row(tenant: Tenant, world: dict[str, Any]) -> None:
    project, held = world["project"], world["held"]
    row = held[0]
    r = tenant.get(f"/projects/{project['id']}/tasks/{row['id']}")
    assert r.status_code == 200, r.text
    task = r.json()
    assert set(task) == TASK_KEYS
    assert task["data_row"] == tenant.get(f"/data-rows/{row['id']}").json()
    assert (task["status"], task["total_annotations"], task["project_id"]) == (
        "labeled",
        1,
        project["id"],
    )
    assert task["lease_user_id"] is None and task["lease_until"] is None
    page = tenant.get(f"/projects/{project['id']}/tasks", params={"limit": 1}).json()
    assert page["items"] == [task]
    resolved = tenant.get(f"/projects/{project['id']}/tasks/{row['id']}?resolve=true").json()
    assert resolved["data_row"]["resolved"]["row_data"] == row["row_data"]  # no storage: as is
    assert resolved["data_row"]["resolved"]["unresolved"][0]["uri"] == row["row_data"]
    pages = tenant.get(f"/projects/{project['id']}/tasks", params={"resolve": "true"}).json()
    assert all("resolved" in t["data_row"] for t in pages["items"])


def test_unknown_tasks_and_bad_filters(
    tenant: Tenant, other_tenant: Tenant, world: dict[str, Any]
) -> None:
    project = world["project"]
    outside = world["rows"][2]["id"]
    path = f"/projects/{project['id']}/tasks"
    r = tenant.get(f"{path}/{outside}")
    assert r.status_code == 404 and "is no task" in r.json()["error"]["message"]
    assert other_tenant.get(f"{path}/{world['held'][0]['id']}").status_code == 404
    assert tenant.get(path, params={"status": "done"}).status_code == 422
    assert tenant.get(path, params={"metadata": ["nofield:eq:1"]}).status_code == 422
    assert tenant.get(path, params={"data_row_id": list(range(1, 1002))}).status_code == 422
    assert tenant.get(path, params={"dataset_id": 2**31 - 2}).json()["items"] == []
    assert tenant.get(path, params={"data_row_id": [2**64, -1]}).json()["items"] == []
    assert tenant.get(path, params={"nope": 1}).status_code == 422
    assert tenant.get(f"/projects/{project['name']}/tasks").json()["items"]
