"""The one write path of tasks, annotations and predictions: adding a row twice does
nothing, and a task's counts and status follow what is written."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, select

from tests.conftest import Tenant
from tests.projects.conftest import new_project
from tether.db.tables import tasks
from tether.projects import labels


def _rows(tenant: Tenant, n: int) -> list[int]:
    ds = tenant.dataset()
    body = "".join(f'{{"row_data": "s3://b/{i}.jpg"}}\n' for i in range(n))
    job = tenant.import_rows(ds["id"], body)
    assert tenant.get(f"/jobs/{job['id']}").json()["status"] == "completed"
    page = tenant.get("/data-rows", params={"dataset_id": ds["id"], "limit": n}).json()
    return sorted(r["id"] for r in page["items"])


def test_tasks_are_added_once_and_counts_follow_annotations(engine: Engine, tenant: Tenant) -> None:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = _rows(tenant, 3)
    with engine.begin() as conn:
        assert labels.add_tasks(conn, tenant.org_id, project["id"], [ids[1], ids[0], ids[1]]) == [
            ids[1],
            ids[0],
        ]
        assert labels.add_tasks(conn, tenant.org_id, project["id"], ids) == [ids[2]]
        base = {"org_id": tenant.org_id, "project_id": project["id"], "result": []}
        made = labels.insert_annotations(
            conn,
            [
                {**base, "data_row_id": ids[0]},
                {**base, "data_row_id": ids[0], "was_cancelled": True},
                {**base, "data_row_id": ids[1], "was_cancelled": True},
            ],
        )
        assert len(made) == 3 and made == sorted(made)
        labels.insert_predictions(
            conn, [{**base, "data_row_id": ids[2], "model_version": "v1", "score": 0.5}]
        )
        got = {
            r.data_row_id: r
            for r in conn.execute(select(tasks).where(tasks.c.project_id == project["id"]))
        }
    assert (got[ids[0]].status, got[ids[0]].total_annotations) == ("labeled", 1)
    assert got[ids[0]].cancelled_annotations == 1
    assert (got[ids[1]].status, got[ids[1]].cancelled_annotations) == ("skipped", 1)
    assert (got[ids[2]].status, got[ids[2]].total_predictions) == ("unlabeled", 1)
    assert tenant.get(f"/projects/{project['id']}").json()["task_counts"] == {
        "unlabeled": 1,
        "labeled": 1,
        "skipped": 1,
    }
