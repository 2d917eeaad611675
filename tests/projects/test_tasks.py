"""Adding data rows to a project as tasks (the ``add_tasks`` job): every way of selecting
rows, rows added twice, rows that cannot join, and Label Studio annotations that come in
with imported tasks."""

from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from tests.conftest import Tenant
from tests.projects.conftest import BOXES, new_project
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import predictions as prediction_rows
from tether.db.tables import tasks as task_rows
from tether.jobs import worker
from tether.projects import tasks

BOX = {
    "from_name": "label",
    "to_name": "image",
    "type": "rectanglelabels",
    "original_width": 100,
    "original_height": 80,
    "value": {"x": 10, "y": 10, "width": 20, "height": 30, "rectanglelabels": ["Cat"]},
}
IMAGE_AND_TEXT = """<View>
  <Image name="image" value="$image"/>
  <Text name="caption" value="$text"/>
  <Choices name="ok" toName="caption"><Choice value="yes"/></Choices>
</View>"""


def _name(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rows_of(tenant: Tenant, items: list[Any], dataset: dict[str, Any] | None = None) -> list[Any]:
    """Import ``items`` into a new (or the given) dataset; their rows in order."""
    ds = dataset or tenant.dataset()
    body = "".join(orjson.dumps(item).decode() + "\n" for item in items)
    job = tenant.import_rows(ds["id"], body)
    assert tenant.get(f"/jobs/{job['id']}").json()["status"] == "completed", tenant.errors(
        job["id"]
    )
    page = tenant.get("/data-rows", params={"dataset_id": ds["id"], "limit": 1000}).json()
    return sorted(page["items"], key=lambda r: r["id"])[-len(items) :]


def images(n: int, prefix: str | None = None, **fields: Any) -> list[dict[str, Any]]:
    tag = prefix or uuid.uuid4().hex[:6]
    return [
        {"row_data": f"s3://b/{tag}/{i}.jpg", "global_key": f"{tag}-{i}", **fields}
        for i in range(n)
    ]


def add(tenant: Tenant, project: dict[str, Any] | str, **body: Any) -> dict[str, Any]:
    """POST the rows, and the job once it ran (the test queue runs it at once)."""
    ref = project if isinstance(project, str) else project["id"]
    r = tenant.post(f"/projects/{ref}/tasks", json=body)
    assert r.status_code == 202, r.text
    first = r.json()
    assert first["kind"] == "add_tasks" and first["project_id"] is not None
    job = tenant.get(f"/jobs/{first['id']}").json()
    assert job["status"] in ("completed", "completed_with_errors"), job
    return job  # type: ignore[no-any-return]


def task_ids(tenant: Tenant, project: dict[str, Any], **params: Any) -> list[int]:
    r = tenant.get(f"/projects/{project['id']}/tasks", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return [t["data_row_id"] for t in r.json()["items"]]


def counts(job: dict[str, Any]) -> tuple[int, int, int]:
    c = job["counts"]
    return c["added"], c["existing"], c["failed"]


# --- selections ------------------------------------------------------------------------------


def test_a_whole_dataset_joins_by_id_or_name_and_twice_is_existing(tenant: Tenant) -> None:
    ds = tenant.dataset()
    rows = rows_of(tenant, images(5), ds)
    project = new_project(tenant, _name())
    job = add(tenant, project, dataset=ds["name"])
    assert counts(job) == (5, 0, 0) and job["progress"] == {"done": 5, "total": 5}
    assert job["project_id"] == project["id"] and job["dataset_id"] == ds["id"]
    again = add(tenant, project["name"], dataset=ds["id"])
    assert counts(again) == (0, 5, 0)
    assert task_ids(tenant, project) == [r["id"] for r in rows]
    shown = tenant.get(f"/projects/{project['id']}").json()
    assert shown["task_count"] == 5 and shown["task_counts"]["unlabeled"] == 5


def test_metadata_and_media_type_filters_select_rows(tenant: Tenant) -> None:
    ds = tenant.dataset()
    cats = rows_of(tenant, images(3, metadata_fields=[{"name": "tag", "value": "cat"}]), ds)
    dogs = rows_of(tenant, images(2, metadata_fields=[{"name": "tag", "value": "dog"}]), ds)
    videos = rows_of(
        tenant,
        [{"row_data": f"s3://b/{i}.mp4", "media_type": "VIDEO"} for i in range(2)],
        ds,
    )
    project = new_project(tenant, _name())
    job = add(tenant, project, dataset=ds["id"], metadata=["tag:eq:cat"])
    assert counts(job) == (3, 0, 0)
    assert job["options"]["metadata"] == [["tag", "eq", "cat"]]
    assert task_ids(tenant, project) == [r["id"] for r in cats]
    video_project = new_project(tenant, _name(), BOXES)
    assert counts(add(tenant, video_project, media_type="video")) == (2, 0, 0)
    assert task_ids(tenant, video_project) == [r["id"] for r in videos]
    # the organization's rows, no dataset: a metadata filter alone
    whole = new_project(tenant, _name())
    assert counts(add(tenant, whole, metadata=["tag:eq:dog"])) == (2, 0, 0)
    assert task_ids(tenant, whole) == [r["id"] for r in dogs]


def test_bad_requests_are_refused_before_any_job(tenant: Tenant) -> None:
    project = new_project(tenant, _name())
    path = f"/projects/{project['id']}/tasks"
    r = tenant.post(path, json={})
    assert r.status_code == 422 and r.json()["error"]["code"] == "nothing_selected"
    assert tenant.post(path, json={"metadata": ["nofield:eq:x"]}).status_code == 422
    assert tenant.post(path, json={"metadata": ["tag:near:x"]}).status_code == 422
    assert tenant.post(path, json={"media_type": "SMELL"}).status_code == 422
    assert tenant.post(path, json={"dataset": "no-such-dataset"}).status_code == 404
    assert tenant.post("/projects/no-such/tasks", json={"dataset": 1}).status_code == 404
    assert tenant.get("/jobs").json()["items"] == []


def test_named_rows_join_and_unknown_or_foreign_ones_are_item_errors(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    ds = tenant.dataset()
    mine = rows_of(tenant, images(3), ds)
    elsewhere = rows_of(tenant, images(1))
    theirs = rows_of(other_tenant, images(1))
    project = new_project(tenant, _name())
    job = add(
        tenant,
        project,
        data_row_ids=[mine[0]["id"], theirs[0]["id"], 999_999_999_999],
        global_keys=[mine[1]["global_key"], "no-such-key", theirs[0]["global_key"]],
    )
    assert counts(job) == (2, 0, 4) and job["status"] == "completed_with_errors"
    assert job["progress"] == {"done": 6, "total": 6}
    errors = {(e["index"], e["code"], e["item_key"]) for e in tenant.errors(job["id"])}
    assert errors == {
        (1, "not_found", str(theirs[0]["id"])),
        (2, "not_found", "999999999999"),
        (4, "not_found", "no-such-key"),
        (5, "not_found", theirs[0]["global_key"]),
    }
    assert task_ids(tenant, project) == [mine[0]["id"], mine[1]["id"]]
    assert task_ids(other_tenant, new_project(other_tenant, _name())) == []
    # with a filter, named rows must match it too
    job = add(
        tenant,
        project,
        dataset=ds["id"],
        data_row_ids=[mine[2]["id"], elsewhere[0]["id"], mine[0]["id"], mine[2]["id"]],
    )
    assert counts(job) == (1, 2, 1)
    [error] = tenant.errors(job["id"])
    assert (error["index"], error["code"]) == (1, "not_selected")
    assert error["item_key"] == str(elsewhere[0]["id"])


def test_rows_lacking_a_key_the_config_shows_do_not_join(tenant: Tenant) -> None:
    rows = rows_of(
        tenant,
        [
            {"row_data": {"image": "s3://b/1.jpg", "text": "a cat"}},
            {"row_data": {"image": "s3://b/2.jpg"}, "global_key": _name("gk")},
            {"row_data": "s3://b/3.jpg"},
        ],
    )
    project = new_project(tenant, _name(), IMAGE_AND_TEXT)
    job = add(tenant, project, data_row_ids=[r["id"] for r in rows])
    assert counts(job) == (1, 0, 2)
    errors = tenant.errors(job["id"])
    assert [(e["index"], e["code"]) for e in errors] == [
        (1, "missing_data_keys"),
        (2, "missing_data_keys"),
    ]
    assert "'text'" in errors[0]["message"] and errors[0]["global_key"] == rows[1]["global_key"]
    assert errors[0]["details"]["missing_keys"] == ["text"]
    assert errors[1]["details"]["missing_keys"] == ["image", "text"]
    assert task_ids(tenant, project) == [rows[0]["id"]]
    # a plain URI is the data of a config that shows one key
    boxes = new_project(tenant, _name())
    assert counts(add(tenant, boxes, data_row_ids=[rows[2]["id"]])) == (1, 0, 0)


# --- Label Studio annotations ----------------------------------------------------------------


def ls_task(n: int, **more: Any) -> dict[str, Any]:
    return {"id": 1000 + n, "data": {"image": f"s3://b/ls/{n}.jpg"}, **more}


def test_imported_annotations_and_predictions_join_once(engine: Engine, tenant: Tenant) -> None:
    ds = tenant.dataset()
    rows = rows_of(
        tenant,
        [
            ls_task(
                0,
                annotations=[
                    {"id": 7, "result": [BOX], "lead_time": 3.5, "ground_truth": True},
                    {"id": 8, "result": [], "was_cancelled": True},
                ],
                predictions=[{"result": [{**BOX, "score": 0.8}], "model_version": "m1"}],
            ),
            ls_task(1, predictions=[{"result": [BOX], "model_version": 3, "score": 0.5}]),
            ls_task(2),
        ],
        ds,
    )
    project = new_project(tenant, _name())
    job = add(tenant, project, dataset=ds["id"])
    assert job["counts"] == {
        "added": 3,
        "existing": 0,
        "imported_annotations": 2,
        "imported_predictions": 2,
        "failed": 0,
    }
    again = add(tenant, project, dataset=ds["id"], data_row_ids=[rows[0]["id"]])
    assert counts(again) == (0, 1, 0) and again["counts"]["imported_annotations"] == 0
    with engine.connect() as conn:
        made = conn.execute(
            select(annotation_rows).where(annotation_rows.c.project_id == project["id"])
        ).all()
        predicted = conn.execute(
            select(prediction_rows)
            .where(prediction_rows.c.project_id == project["id"])
            .order_by(prediction_rows.c.data_row_id)
        ).all()
    assert len(made) == 2 and {a.data_row_id for a in made} == {rows[0]["id"]}
    done = next(a for a in made if not a.was_cancelled)
    assert orjson.loads(done.result) == [BOX] and done.lead_time == 3.5 and done.ground_truth
    assert done.completed_by is None
    assert [(p.model_version, p.score) for p in predicted] == [("m1", None), ("3", 0.5)]
    first = tenant.get(f"/projects/{project['id']}/tasks/{rows[0]['id']}").json()
    assert (first["status"], first["total_annotations"], first["cancelled_annotations"]) == (
        "labeled",
        1,
        1,
    )
    assert first["total_predictions"] == 1 and first["imported_at"] is not None
    assert first["data_row"]["annotations"][0]["id"] == 7  # the row keeps what it came with
    last = tenant.get(f"/projects/{project['id']}/tasks/{rows[2]['id']}").json()
    assert last["imported_at"] is None and last["status"] == "unlabeled"
    # another project brings them in again, for itself
    other = new_project(tenant, _name())
    assert add(tenant, other, dataset=ds["id"])["counts"]["imported_annotations"] == 2


def test_an_imported_annotation_that_does_not_fit_is_an_item_error(
    engine: Engine, tenant: Tenant
) -> None:
    wrong = {**BOX, "from_name": "nope"}
    rows = rows_of(
        tenant,
        [
            ls_task(
                0,
                annotations=[
                    {"id": 1, "result": [BOX]},
                    {"id": 2, "result": [BOX, wrong]},
                    {"id": 3, "result": [BOX], "lead_time": "long"},
                ],
                predictions=[{"result": [wrong]}, {"result": [BOX]}],
            ),
            ls_task(1, annotations="not a list"),
        ],
    )
    project = new_project(tenant, _name())
    job = add(tenant, project, data_row_ids=[r["id"] for r in rows])
    assert job["counts"]["added"] == 2 and job["counts"]["failed"] == 4
    assert job["counts"]["imported_annotations"] == 1
    assert job["counts"]["imported_predictions"] == 1
    errors = tenant.errors(job["id"])
    assert [(e["index"], e["code"]) for e in errors] == [
        (0, "region_mismatch"),
        (0, "bad_annotation"),
        (0, "region_mismatch"),
        (1, "bad_annotation"),
    ]
    first = errors[0]
    assert f"data row {rows[0]['id']}" in first["message"]
    assert "annotation 1 (Label Studio id 2)" in first["message"]
    assert "result[1]" in first["message"] and "'nope'" in first["message"]
    assert first["details"]["source_id"] == 2 and first["details"]["kind"] == "annotation"
    assert "prediction 0" in errors[2]["message"]
    with engine.connect() as conn:
        kept = conn.execute(
            select(annotation_rows.c.result).where(annotation_rows.c.project_id == project["id"])
        ).all()
    assert len(kept) == 1


# --- the job ---------------------------------------------------------------------------------


def test_rows_join_a_chunk_a_transaction_and_a_resumed_job_goes_on(
    engine: Engine, tenant: Tenant
) -> None:
    ds = tenant.dataset()
    rows = rows_of(tenant, images(7), ds)
    project = new_project(tenant, _name())
    with engine.begin() as conn:
        job = tasks.start(conn, tenant.org_id, project["id"], dataset=ds["id"])
    stop = threading.Event()
    seen: list[int] = []

    def stop_after_two_chunks(run: worker.JobRun) -> None:
        real = run.record

        def record(conn: Any, done: int, *args: Any, **kw: Any) -> bool:
            seen.append(done)
            if len(seen) == 2:
                stop.set()
            return real(conn, done, *args, **kw)

        run.record = record  # type: ignore[method-assign]
        tasks.run(run, chunk_rows=3)

    lease = worker.timedelta(seconds=30)
    worker.execute(engine, job["id"], {tasks.KIND: stop_after_two_chunks}, "w1", lease, stop)
    assert seen == [3, 6]
    with engine.connect() as conn:
        half = conn.execute(
            select(task_rows.c.data_row_id).where(task_rows.c.project_id == project["id"])
        ).scalars()
        assert sorted(half) == [r["id"] for r in rows[:6]]
    worker.execute(engine, job["id"], {tasks.KIND: tasks.add_tasks_runner(3)}, "w2", lease)
    done = tenant.get(f"/jobs/{job['id']}").json()
    assert done["status"] == "completed" and counts(done) == (7, 0, 0)
    assert done["progress"] == {"done": 7, "total": 7}
    assert task_ids(tenant, project) == [r["id"] for r in rows]


def test_a_repeated_idempotency_key_returns_the_first_job(tenant: Tenant) -> None:
    ds = tenant.dataset()
    rows_of(tenant, images(2), ds)
    project = new_project(tenant, _name())
    key = {"Idempotency-Key": uuid.uuid4().hex}
    path = f"/projects/{project['id']}/tasks"
    first = tenant.post(path, json={"dataset": ds["id"]}, headers=key)
    second = tenant.post(path, json={"dataset": ds["id"]}, headers=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert [j["kind"] for j in tenant.get("/jobs").json()["items"]].count("add_tasks") == 1
    other = tenant.post(path, json={"dataset": ds["name"]}, headers=key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_members_add_rows_and_other_organizations_see_nothing(
    tenant: Tenant, member: Tenant, other_tenant: Tenant
) -> None:
    ds = tenant.dataset()
    rows_of(tenant, images(2), ds)
    project = new_project(tenant, _name())
    assert counts(add(member, project, dataset=ds["id"])) == (2, 0, 0)
    path = f"/projects/{project['id']}"
    assert other_tenant.post(path + "/tasks", json={"dataset": ds["id"]}).status_code == 404
    assert other_tenant.get(path + "/tasks").status_code == 404
    assert other_tenant.get(path + "/next-task").status_code == 404
    theirs = new_project(other_tenant, _name())
    r = other_tenant.post(f"/projects/{theirs['id']}/tasks", json={"dataset": ds["id"]})
    assert r.status_code == 404  # another organization's dataset is no dataset


def test_a_project_deleted_while_rows_join_fails_the_job_with_a_message(
    engine: Engine, tenant: Tenant
) -> None:
    ds = tenant.dataset()
    rows_of(tenant, images(4), ds)
    project = new_project(tenant, _name())
    with engine.begin() as conn:
        job = tasks.start(conn, tenant.org_id, project["id"], dataset=ds["id"])

    def delete_after_a_chunk(run: worker.JobRun) -> None:
        real = run.check_stop

        def check_stop() -> None:
            if run.done:
                assert tenant.delete(f"/projects/{project['id']}").status_code == 204
            real()

        run.check_stop = check_stop  # type: ignore[method-assign]
        tasks.run(run, chunk_rows=2)

    lease = worker.timedelta(seconds=30)
    worker.execute(engine, job["id"], {tasks.KIND: delete_after_a_chunk}, "w", lease)
    done = tenant.get(f"/jobs/{job['id']}").json()
    assert done["status"] == "failed", done
    assert done["message"] == "the project was deleted while its rows were being added"
    assert done["counts"]["added"] == 2


def test_a_row_deleted_under_a_chunk_leaves_the_chunk_to_be_done_again(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    [row] = rows_of(tenant, images(1))
    ghost = 10**12  # a row read for the chunk, gone by the time its task is written
    real_rows = tasks._rows
    calls: list[int] = []

    def rows_with_a_ghost(conn: Any, org_id: int, column: Any, values: list[Any]) -> list[Any]:
        found = real_rows(conn, org_id, column, values)
        calls.append(len(found))
        if len(calls) == 1 and ghost in values:
            found.append(SimpleNamespace(id=ghost, global_key=None, row_data='"x"', extra=None))
        return found

    monkeypatch.setattr(tasks, "_rows", rows_with_a_ghost)
    project = new_project(tenant, _name())
    job = add(tenant, project, data_row_ids=[row["id"], ghost])
    assert counts(job) == (1, 0, 1) and len(calls) >= 2
    assert [e["code"] for e in tenant.errors(job["id"])] == ["not_found"]
