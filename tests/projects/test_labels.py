"""The one write path of tasks, annotations and predictions: adding a row twice does
nothing, and a task's counts and status follow what is written."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from sqlalchemy import Engine, select

from tests.conftest import Tenant
from tests.projects.conftest import new_project
from tether.db.tables import annotations, projects, tasks
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


def _seqs(conn: Any, ids: list[int]) -> list[int]:
    query = select(annotations.c.id, annotations.c.seq).where(annotations.c.id.in_(ids))
    found = {int(i): int(seq) for i, seq in conn.execute(query)}
    return [found[i] for i in ids]


def _counter(conn: Any, project_id: int) -> int:
    query = select(projects.c.annotation_seq).where(projects.c.id == project_id)
    return int(conn.execute(query).scalar_one())


def test_every_save_takes_the_projects_next_change_number(engine: Engine, tenant: Tenant) -> None:
    """What exports read by: inserts and edits number the annotations, one project at a
    time; a refused edit takes none."""
    one, two = (new_project(tenant, f"p-{uuid.uuid4().hex[:8]}") for _ in range(2))
    ids = _rows(tenant, 2)
    with engine.begin() as conn:
        for project in (one, two):
            labels.add_tasks(conn, tenant.org_id, project["id"], ids)
        base = {"org_id": tenant.org_id, "result": [], "data_row_id": ids[0]}
        first = _counter(conn, one["id"])
        made = labels.insert_annotations(
            conn,
            [
                {**base, "project_id": one["id"]},
                {**base, "project_id": two["id"]},
                {**base, "project_id": one["id"], "data_row_id": ids[1]},
            ],
        )
        assert _seqs(conn, made) == [first + 1, _counter(conn, two["id"]), first + 2]
        assert _counter(conn, one["id"]) == first + 2
        changed = labels.update_annotation(conn, tenant.org_id, made[0], {"lead_time": 2.0})
        assert changed is not None and changed.seq == first + 3 and changed.version == 2
        stale = labels.update_annotation(
            conn, tenant.org_id, made[2], {"lead_time": 1.0}, expected_version=5
        )
        assert stale is None and _seqs(conn, [made[2]]) == [first + 2]
        assert labels.update_annotation(conn, tenant.org_id + 999, made[2], {}) is None
        assert _counter(conn, one["id"]) <= first + 4  # (a refused edit's number is not used)


def test_change_numbers_follow_commit_order(engine: Engine, tenant: Tenant) -> None:
    """A save that takes numbers waits for an open save of the same project to commit, so
    an export that has seen a number has seen every save below it."""
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = _rows(tenant, 2)
    base = {"org_id": tenant.org_id, "project_id": project["id"], "result": []}
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, project["id"], ids)
        [later] = labels.insert_annotations(conn, [{**base, "data_row_id": ids[1]}])
    saved = threading.Event()

    def edit() -> None:
        with engine.begin() as conn:
            labels.update_annotation(conn, tenant.org_id, later, {"lead_time": 3.0})
        saved.set()

    with engine.connect() as first:
        first.begin()
        [earlier] = labels.insert_annotations(first, [{**base, "data_row_id": ids[0]}])
        other = threading.Thread(target=edit)
        other.start()
        assert not saved.wait(0.5), "the edit waited for the open save"
        first.commit()
    other.join(30)
    assert saved.is_set()
    with engine.connect() as conn:
        committed_first, committed_next = _seqs(conn, [earlier, later])
    assert committed_first < committed_next  # (on SQLite any two writers wait so)
