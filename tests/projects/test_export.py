"""Exporting a project: every task in data row id order with its annotations and predictions,
in Label Studio's JSON export shape (field by field against shared/LABELING.md), streamed as
JSON or NDJSON with the task count in a header, three queries a batch, one snapshot."""

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
TASK_KEYS = {
    "id",
    "data",
    "meta",
    "created_at",
    "updated_at",
    "is_labeled",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
    "project",
    "annotations",
    "predictions",
}
ANNOTATION_KEYS = {
    "id",
    "result",
    "completed_by",
    "was_cancelled",
    "ground_truth",
    "lead_time",
    "created_at",
    "updated_at",
    "draft_created_at",
    "task",
    "project",
    "updated_by",
    "parent_prediction",
    "parent_annotation",
}
PREDICTION_KEYS = {
    "id",
    "result",
    "model_version",
    "score",
    "created_at",
    "updated_at",
    "task",
    "project",
}


def box(label: str = "Cat", **value: float) -> dict[str, Any]:
    """A rectangle as Label Studio's editor writes it: percentages, the image in pixels."""
    where = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0, **value}
    return {
        "id": uuid.uuid4().hex[:10],
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "origin": "manual",
        "original_width": 2000,
        "original_height": 1000,
        "image_rotation": 0,
        "value": {**where, "rotation": 0, "rectanglelabels": [label]},
    }


def rows(tenant: Tenant, lines: list[str]) -> list[int]:
    """Import ``lines`` (NDJSON rows) into a new dataset; their ids in order."""
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], "".join(line + "\n" for line in lines))
    assert tenant.get(f"/jobs/{job['id']}").json()["status"] == "completed"
    page = tenant.get("/data-rows", params={"dataset_id": ds["id"], "limit": len(lines)}).json()
    return sorted(r["id"] for r in page["items"])


def image_rows(tenant: Tenant, n: int) -> list[int]:
    return rows(tenant, [f'{{"row_data": "s3://b/img/{i}.jpg"}}' for i in range(n)])


def labeled_project(
    engine: Engine, tenant: Tenant, n: int = 4
) -> tuple[dict[str, Any], list[int], dict[str, Any]]:
    """A project of ``n`` image rows: the first annotated (a box, by the tenant's user), the
    second skipped, the third with a prediction only, the rest bare."""
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = image_rows(tenant, n)
    base = {"org_id": tenant.org_id, "project_id": project["id"]}
    region = box()
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, project["id"], ids)
        labels.insert_annotations(
            conn,
            [
                {
                    **base,
                    "data_row_id": ids[0],
                    "result": [region],
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
                    "result": [{**region, "score": 0.9}],
                    "model_version": "v1",
                    "score": 0.9,
                }
            ],
        )
    return project, ids, region


def test_the_export_shape_field_by_field(engine: Engine, tenant: Tenant) -> None:
    project, ids, region = labeled_project(engine, tenant)
    r = tenant.get(f"/projects/{project['id']}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-tether-export-tasks"] == "4"
    got = r.json()
    assert [t["id"] for t in got] == ids  # a task's id is its data row's, in id order
    for i, t in enumerate(got):
        assert set(t) == TASK_KEYS
        assert t["data"] == {"image": f"s3://b/img/{i}.jpg"}  # stored URI, not resolved
        assert t["meta"] == {}
        assert STAMP.match(t["created_at"]) and STAMP.match(t["updated_at"])
        assert t["project"] == project["id"]
    done, skipped, predicted, bare = got
    assert (done["is_labeled"], done["total_annotations"], done["cancelled_annotations"]) == (
        True,
        1,
        0,
    )
    assert (skipped["is_labeled"], skipped["total_annotations"]) == (False, 0)
    assert skipped["cancelled_annotations"] == 1
    assert (predicted["total_predictions"], predicted["annotations"]) == (1, [])
    assert (bare["annotations"], bare["predictions"], bare["is_labeled"]) == ([], [], False)

    (a,) = done["annotations"]
    assert set(a) == ANNOTATION_KEYS
    assert isinstance(a["id"], int)
    assert a["result"] == [region]
    assert a["completed_by"] == tenant.user_id  # the user's id, as Label Studio's export
    assert (a["was_cancelled"], a["ground_truth"], a["lead_time"]) == (False, False, 12.5)
    assert STAMP.match(a["created_at"]) and STAMP.match(a["updated_at"])
    assert a["draft_created_at"] is None
    assert (a["task"], a["project"], a["updated_by"]) == (ids[0], project["id"], tenant.user_id)
    assert (a["parent_prediction"], a["parent_annotation"]) == (None, None)
    (cancel,) = skipped["annotations"]
    assert (cancel["was_cancelled"], cancel["result"], cancel["updated_by"]) == (True, [], None)

    (p,) = predicted["predictions"]
    assert set(p) == PREDICTION_KEYS
    assert (p["result"], p["model_version"], p["score"]) == ([{**region, "score": 0.9}], "v1", 0.9)
    assert (p["task"], p["project"]) == (ids[2], project["id"])
    assert STAMP.match(p["created_at"]) and STAMP.match(p["updated_at"])


def test_ndjson_is_a_task_a_line_and_json_a_task_a_line_in_an_array(
    engine: Engine, tenant: Tenant
) -> None:
    project, _ids, _ = labeled_project(engine, tenant, n=3)
    as_json = tenant.get(f"/projects/{project['name']}/export", params={"format": "json"})
    as_ndjson = tenant.get(f"/projects/{project['id']}/export", params={"format": "ndjson"})
    assert as_ndjson.status_code == 200, as_ndjson.text
    assert as_ndjson.headers["content-type"].startswith("application/x-ndjson")
    assert as_ndjson.headers["x-tether-export-tasks"] == "3"
    lines = as_ndjson.content.splitlines()
    assert [orjson.loads(line) for line in lines] == as_json.json()
    assert as_json.content.splitlines()[0] == b"[" and as_json.content.endswith(b"\n]\n")
    assert len(as_json.content.splitlines()) == 3 + 2
    assert 'filename="project-' in as_json.headers["content-disposition"]


def test_an_empty_project_exports_an_empty_array(tenant: Tenant) -> None:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    r = tenant.get(f"/projects/{project['id']}/export")
    assert (r.status_code, r.json(), r.headers["x-tether-export-tasks"]) == (200, [], "0")
    r = tenant.get(f"/projects/{project['id']}/export", params={"format": "ndjson"})
    assert (r.status_code, r.content) == (200, b"")


def test_status_filters_tasks_and_the_count(engine: Engine, tenant: Tenant) -> None:
    project, ids, _ = labeled_project(engine, tenant)
    path = f"/projects/{project['id']}/export"
    r = tenant.get(path, params={"status": "labeled"})
    assert r.headers["x-tether-export-tasks"] == "1"
    assert [t["id"] for t in r.json()] == [ids[0]]
    r = tenant.get(path, params=[("status", "skipped"), ("status", "unlabeled")])
    assert r.headers["x-tether-export-tasks"] == "3"
    assert [t["id"] for t in r.json()] == ids[1:]
    bad = tenant.get(path, params={"status": "done"})
    assert bad.status_code == 422
    assert "unlabeled, labeled, skipped" in bad.json()["error"]["message"]
    assert tenant.get(path, params={"format": "csv"}).status_code == 422


def test_data_is_the_rows_data_as_the_config_reads_it(engine: Engine, tenant: Tenant) -> None:
    """A plain value is the config's one key; an object is kept as it is, a key it lacks
    too (the export never drops or invents data)."""
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = rows(
        tenant,
        [
            '{"row_data": "gs://b/a.png"}',
            '{"row_data": {"image": "s3://b/x.jpg", "caption": "a cat"}}',
            '{"row_data": {"picture": "s3://b/y.jpg"}}',
        ],
    )
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, project["id"], ids)
    got = tenant.get(f"/projects/{project['id']}/export").json()
    assert [t["data"] for t in got] == [
        {"image": "gs://b/a.png"},
        {"image": "s3://b/x.jpg", "caption": "a cat"},
        {"picture": "s3://b/y.jpg"},
    ]


def test_three_queries_a_batch_whatever_its_size(engine: Engine, tenant: Tenant) -> None:
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}")
    ids = image_rows(tenant, 5)
    base = {"org_id": tenant.org_id, "project_id": project["id"], "result": [box()]}
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, project["id"], ids)
        labels.insert_annotations(conn, [{**base, "data_row_id": i} for i in ids for _ in "ab"])
        labels.insert_predictions(conn, [{**base, "data_row_id": i} for i in ids])
    statements: list[str] = []

    def seen(_c: Any, _cursor: Any, sql: str, *_a: Any) -> None:
        statements.append(sql)

    opened = export.open_export(engine, tenant.org_id, project["id"], batch=2)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        batches = list(opened.items)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert [t["id"] for b in batches for t in b] == ids
    assert all(
        len(t["annotations"]) == 2 and len(t["predictions"]) == 1 for b in batches for t in b
    )
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3 * 3  # tasks + annotations + predictions, per batch


def test_an_export_is_one_snapshot(engine: Engine, tenant: Tenant) -> None:
    project, ids, _ = labeled_project(engine, tenant)
    opened = export.open_export(engine, tenant.org_id, project["id"])
    try:
        with engine.begin() as conn:
            labels.insert_annotations(
                conn,
                [
                    {
                        "org_id": tenant.org_id,
                        "project_id": project["id"],
                        "data_row_id": ids[3],
                        "result": [box()],
                    }
                ],
            )
        got = [t for b in opened.items for t in b]
    finally:
        opened.close()
    assert opened.tasks == 4
    assert got[3]["annotations"] == [] and got[3]["is_labeled"] is False
    after = tenant.get(f"/projects/{project['id']}/export").json()
    assert len(after[3]["annotations"]) == 1


def test_another_organizations_project_is_not_found(
    engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    project, _, _ = labeled_project(engine, tenant, n=3)
    for value in (project["id"], project["name"]):
        r = other_tenant.get(f"/projects/{value}/export")
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_a_reader_that_stops_early_lets_go_of_the_snapshot(
    engine: Engine, tenant: Tenant, fmt: str
) -> None:
    project, _, _ = labeled_project(engine, tenant)
    opened = export.open_export(engine, tenant.org_id, project["id"], batch=1)
    stream = export.chunks(opened, fmt)
    next(stream)
    stream.close()
    with pytest.raises(StopIteration):
        next(opened.items)


def test_closing_an_export_before_reading_it_returns_its_connection(
    engine: Engine, tenant: Tenant
) -> None:
    """As a refused conversion does: a generator closed unstarted never runs its finally."""
    project, _, _ = labeled_project(engine, tenant)
    opened = export.open_export(engine, tenant.org_id, project["id"])
    opened.close()
    assert opened.conn.closed


def test_a_status_filter_reads_only_the_rows_of_the_tasks_it_keeps(
    engine: Engine, tenant: Tenant
) -> None:
    project, ids, _ = labeled_project(engine, tenant)
    opened = export.open_export(engine, tenant.org_id, project["id"], statuses=["unlabeled"])
    got = [t for b in opened.items for t in b]
    assert [t["id"] for t in got] == ids[2:]
    assert [len(t["predictions"]) for t in got] == [1, 0]
    assert all(t["annotations"] == [] for t in got)


def test_stamps_are_utc_whatever_zone_the_database_answers_in() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from tether.projects import shapes

    paris = datetime(2026, 12, 1, 9, 42, 23, 324500, tzinfo=timezone(timedelta(hours=2)))
    assert shapes.stamp(paris) == "2026-12-01T07:42:23.324500Z"
    assert shapes.stamp(datetime(2026, 12, 1, 7, 42, 23)) == "2026-12-01T07:42:23.000000Z"
    assert shapes.stamp(datetime(2026, 12, 1, 7, 42, 23, 5, tzinfo=UTC)).endswith(":23.000005Z")
