"""Exporting a project: every task in data row id order with its annotations and predictions,
in Label Studio's JSON export shape (field by field against shared/LABELING.md), streamed as
JSON or NDJSON with the task count in a header, in batches of three queries."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, event

from tests.conftest import Tenant
from tests.projects.conftest import new_project
from tether.projects import export, labels

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
BOX = {
    "id": "r1",
    "from_name": "label",
    "to_name": "image",
    "type": "rectanglelabels",
    "origin": "manual",
    "original_width": 2000,
    "original_height": 1000,
    "image_rotation": 0,
    "value": {
        "x": 10,
        "y": 20,
        "width": 30,
        "height": 40,
        "rotation": 0,
        "rectanglelabels": ["Cat"],
    },
}


def rows(tenant: Tenant, lines: list[str]) -> list[int]:
    """Import ``lines`` (NDJSON rows) into a new dataset; their ids in order."""
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], "".join(line + "\n" for line in lines))
    assert tenant.get(f"/jobs/{job['id']}").json()["status"] == "completed"
    page = tenant.get("/data-rows", params={"dataset_id": ds["id"], "limit": len(lines)}).json()
    return sorted(r["id"] for r in page["items"])


def labeled_project(engine: Engine, tenant: Tenant, n: int = 3) -> tuple[dict[str, Any], list[int]]:
    """A project of ``n`` image rows: the first annotated (a box), then skipped, the third
    with a prediction only, the rest bare."""
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = rows(tenant, [f'{{"row_data": "s3://b/img/{i}.jpg"}}' for i in range(n)])
    base = {"org_id": tenant.org_id, "project_id": project["id"]}
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, project["id"], ids)
        labels.insert_annotations(
            conn,
            [
                {
                    **base,
                    "data_row_id": ids[0],
                    "result": [BOX],
                    "lead_time": 12.5,
                    "completed_by": tenant.user_id,
                    "updated_by": tenant.user_id,
                },
                {
                    **base,
                    "data_row_id": ids[1],
                    "result": [],
                    "was_cancelled": True,
                    "completed_by": tenant.user_id,
                },
            ],
        )
        labels.insert_predictions(
            conn,
            [
                {
                    **base,
                    "data_row_id": ids[2],
                    "result": [{**BOX, "score": 0.9}],
                    "model_version": "v1",
                    "score": 0.9,
                }
            ],
        )
    return project, ids


def test_json_export_holds_every_task_in_label_studios_shape(
    engine: Engine, tenant: Tenant
) -> None:
    project, ids = labeled_project(engine, tenant)
    r = tenant.get(f"/projects/{project['id']}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-tether-export-tasks"] == "3"
    got = r.json()
    assert [t["id"] for t in got] == ids
    print(orjson.dumps(got, option=orjson.OPT_INDENT_2).decode())
