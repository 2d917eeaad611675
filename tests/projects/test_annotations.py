"""Annotations through the API, the SDK and the CLI: made on a task, listed, changed (the
version grows), deleted; every region checked against the label config; the task's counts
and status follow; the saver's next-task lease ends; other organizations see nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, update

from tests.conftest import Tenant
from tests.projects.conftest import new_project
from tether import Client
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import tasks
from tether.projects import labels
from tether.sdk import ConflictError, InvalidError, NotFoundError

# A project that labels an image with boxes and a caption with choices.
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
  <Text name="caption" value="$caption"/>
  <Choices name="mood" toName="caption"><Choice value="happy"/></Choices>
</View>"""


def box(**changes: Any) -> dict[str, Any]:
    region = {
        "id": "x7xyRPHv7f",
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "origin": "manual",
        "original_width": 2242,
        "original_height": 2802,
        "image_rotation": 0,
        "value": {
            "x": 20,
            "y": 20,
            "width": 30,
            "height": 40,
            "rotation": 0,
            "rectanglelabels": ["Cat"],
        },
    }
    region.update(changes)
    return region


def mood() -> dict[str, Any]:
    return {
        "id": "m1",
        "from_name": "mood",
        "to_name": "caption",
        "type": "choices",
        "value": {"choices": ["happy"]},
    }


def make_tasks(engine: Engine, tenant: Tenant, n: int, config: str = CONFIG) -> tuple[dict, list]:
    """A new project with ``n`` tasks (rows imported through the API); the project and the
    tasks' data row ids."""
    project = new_project(tenant, f"p-{uuid.uuid4().hex[:8]}", config)
    ds = tenant.dataset()
    tag = uuid.uuid4().hex[:8]
    body = "".join(
        orjson.dumps(
            {"row_data": {"image": f"s3://b/{i}.jpg", "caption": "hi"}, "global_key": f"{tag}-{i}"}
        ).decode()
        + "\n"
        for i in range(n)
    )
    job = tenant.import_rows(ds["id"], body)
    assert tenant.get(f"/jobs/{job['id']}").json()["status"] == "completed"
    page = tenant.get("/data-rows", params={"dataset_id": ds["id"], "limit": n}).json()
    ids = sorted(r["id"] for r in page["items"])
    with engine.begin() as conn:
        labels.add_tasks(conn, tenant.org_id, project["id"], ids)
    return project, ids


def task_row(engine: Engine, project_id: int, row_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(tasks).where(tasks.c.project_id == project_id, tasks.c.data_row_id == row_id)
        ).one()


def annotate(tenant: Tenant, project_id: int, row_id: int, **body: Any) -> Any:
    body.setdefault("result", [box()])
    return tenant.post(f"/projects/{project_id}/tasks/{row_id}/annotations", json=body)


def test_create_read_change_delete(engine: Engine, tenant: Tenant) -> None:
    project, ids = make_tasks(engine, tenant, 1)
    r = annotate(tenant, project["id"], ids[0], result=[box(), mood()], lead_time=12.5)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["result"] == [box(), mood()]
    assert (made["task"], made["data_row_id"], made["project"]) == (ids[0], ids[0], project["id"])
    assert made["completed_by"] == made["updated_by"] == tenant.user_id
    assert (made["version"], made["lead_time"], made["was_cancelled"]) == (1, 12.5, False)
    assert made["ground_truth"] is False and made["created_at"].endswith("Z")
    assert tenant.get(f"/annotations/{made['id']}").json() == made
    by_task = tenant.get(f"/projects/{project['id']}/tasks/{ids[0]}/annotations").json()
    assert by_task["items"] == [made]

    r = tenant.patch(
        f"/annotations/{made['id']}",
        json={"result": [mood()], "ground_truth": True, "lead_time": 20},
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["version"], changed["result"], changed["ground_truth"]) == (2, [mood()], True)
    assert changed["lead_time"] == 20 and changed["created_at"] == made["created_at"]
    assert changed["updated_at"] >= made["updated_at"]
    r = tenant.patch(f"/annotations/{made['id']}", json={"was_cancelled": False})
    assert r.json()["version"] == 3
    assert tenant.patch(f"/annotations/{made['id']}", json={}).json()["version"] == 3

    assert tenant.delete(f"/annotations/{made['id']}").status_code == 204
    assert tenant.get(f"/annotations/{made['id']}").status_code == 404
    assert tenant.delete(f"/annotations/{made['id']}").status_code == 404
    assert tenant.patch(f"/annotations/{made['id']}", json={"lead_time": 1}).status_code == 404


def test_counts_and_status_follow_creates_changes_and_deletes(
    engine: Engine, tenant: Tenant
) -> None:
    project, (a, b) = make_tasks(engine, tenant, 2)
    pid = project["id"]
    first = annotate(tenant, pid, a).json()
    skip = annotate(tenant, pid, b, result=[], was_cancelled=True).json()
    assert (task_row(engine, pid, a).status, task_row(engine, pid, a).total_annotations) == (
        "labeled",
        1,
    )
    row = task_row(engine, pid, b)
    assert (row.status, row.cancelled_annotations, row.total_annotations) == ("skipped", 1, 0)
    counts = tenant.get(f"/projects/{pid}").json()["task_counts"]
    assert counts == {"unlabeled": 0, "labeled": 1, "skipped": 1}

    # A skip turned into a labeled annotation, and back.
    tenant.patch(f"/annotations/{skip['id']}", json={"was_cancelled": False, "result": [box()]})
    assert task_row(engine, pid, b).status == "labeled"
    tenant.patch(f"/annotations/{skip['id']}", json={"was_cancelled": True, "result": []})
    assert task_row(engine, pid, b).status == "skipped"

    # A skip beside an annotation: still labeled; without the annotation: skipped; then none.
    second_skip = annotate(tenant, pid, a, result=[], was_cancelled=True).json()
    assert task_row(engine, pid, a).status == "labeled"
    tenant.delete(f"/annotations/{first['id']}")
    row = task_row(engine, pid, a)
    assert (row.status, row.total_annotations, row.cancelled_annotations) == ("skipped", 0, 1)
    tenant.delete(f"/annotations/{second_skip['id']}")
    tenant.delete(f"/annotations/{skip['id']}")
    for row_id in (a, b):
        row = task_row(engine, pid, row_id)
        assert (row.status, row.total_annotations, row.cancelled_annotations) == (
            "unlabeled",
            0,
            0,
        )
    counts = tenant.get(f"/projects/{pid}").json()["task_counts"]
    assert counts == {"unlabeled": 2, "labeled": 0, "skipped": 0}


@pytest.mark.parametrize(
    ("result", "index", "words"),
    [
        ([box(), box(from_name="labels")], 1, "from_name 'labels' is no control tag"),
        ([box(to_name="caption")], 0, "to_name 'caption' is not what RectangleLabels"),
        ([mood(), box(type="polygonlabels")], 1, "type 'polygonlabels' is not made by"),
        ([box(type=None)], 0, "needs a type"),
        ([box(), "a box"], 1, "a region is a JSON object"),
        ([{**mood(), "from_name": None}], 0, "from_name None"),
    ],
)
def test_a_region_that_does_not_fit_is_refused_naming_it(
    engine: Engine, tenant: Tenant, result: list[Any], index: int, words: str
) -> None:
    project, (row_id,) = make_tasks(engine, tenant, 1)
    r = annotate(tenant, project["id"], row_id, result=result)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "region_mismatch"
    assert error["details"]["index"] == index
    assert error["message"].startswith(f"result[{index}]: ") and words in error["message"]
    # Nothing stored, and a change to such a result is refused alike.
    assert tenant.get(f"/projects/{project['id']}/tasks/{row_id}/annotations").json() == {
        "items": []
    }
    made = annotate(tenant, project["id"], row_id).json()
    r = tenant.patch(f"/annotations/{made['id']}", json={"result": result})
    assert r.status_code == 422 and r.json()["error"]["code"] == "region_mismatch"
    assert tenant.get(f"/annotations/{made['id']}").json() == made


def test_bad_values_are_clear_422s(engine: Engine, tenant: Tenant) -> None:
    project, (row_id,) = make_tasks(engine, tenant, 1)
    for body in (
        {"result": {"from_name": "label"}},
        {"result": [box()], "lead_time": -1},
        {"result": [box()], "extra": 1},
        {},
    ):
        r = tenant.post(f"/projects/{project['id']}/tasks/{row_id}/annotations", json=body)
        assert r.status_code == 422, (body, r.text)
    made = annotate(tenant, project["id"], row_id).json()
    for body in ({"result": None}, {"was_cancelled": None}, {"version": 0}):
        r = tenant.patch(f"/annotations/{made['id']}", json=body)
        assert r.status_code == 422, (body, r.text)
    assert tenant.get(f"/annotations/{made['id']}").json()["version"] == 1


def test_a_row_that_is_no_task_and_other_organizations_are_not_found(
    engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    project, (row_id,) = make_tasks(engine, tenant, 1)
    _other_project, (elsewhere,) = make_tasks(engine, tenant, 1)  # a row of another project
    for target in (elsewhere, 2**62):
        r = annotate(tenant, project["id"], target)
        assert r.status_code == 404 and "no task of project" in r.json()["error"]["message"]
        assert tenant.get(f"/projects/{project['id']}/tasks/{target}/annotations").status_code == (
            404
        )
    assert annotate(tenant, 2**30, row_id).status_code == 404
    made = annotate(tenant, project["id"], row_id).json()
    path = f"/annotations/{made['id']}"
    for call in (
        other_tenant.get(path),
        other_tenant.patch(path, json={"lead_time": 3}),
        other_tenant.delete(path),
        annotate(other_tenant, project["id"], row_id),
        other_tenant.get(f"/projects/{project['id']}/annotations"),
        other_tenant.get(f"/projects/{project['id']}/tasks/{row_id}/annotations"),
    ):
        assert call.status_code == 404, call.text
    assert tenant.get(path).json() == made


def test_a_stale_version_is_a_conflict(engine: Engine, tenant: Tenant) -> None:
    project, (row_id,) = make_tasks(engine, tenant, 1)
    made = annotate(tenant, project["id"], row_id).json()
    path = f"/annotations/{made['id']}"
    r = tenant.patch(path, json={"result": [mood()], "version": 1})
    assert r.status_code == 200 and r.json()["version"] == 2
    r = tenant.patch(path, json={"result": [box()], "version": 1})  # made on the old copy
    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "version_mismatch" and error["details"]["version"] == 2
    assert tenant.get(path).json()["result"] == [mood()]
    assert tenant.patch(path, json={"result": [box()]}).json()["version"] == 3  # no precondition


def test_saving_ends_the_savers_lease_only(engine: Engine, tenant: Tenant, member: Tenant) -> None:
    project, (mine, theirs) = make_tasks(engine, tenant, 2)
    pid = project["id"]
    until = datetime.now(UTC) + timedelta(minutes=10)
    with engine.begin() as conn:
        for row_id, user in ((mine, tenant.user_id), (theirs, member.user_id)):
            conn.execute(
                update(tasks)
                .where(tasks.c.project_id == pid, tasks.c.data_row_id == row_id)
                .values(lease_user_id=user, lease_until=until)
            )
    annotate(tenant, pid, mine)
    row = task_row(engine, pid, mine)
    assert (row.lease_user_id, row.lease_until) == (None, None)
    made = annotate(tenant, pid, theirs).json()  # another annotator's lease stays
    assert task_row(engine, pid, theirs).lease_user_id == member.user_id
    annotate(member, pid, theirs, result=[], was_cancelled=True)  # a skip saves too
    assert task_row(engine, pid, theirs).lease_user_id is None
    with engine.begin() as conn:
        conn.execute(
            update(tasks)
            .where(tasks.c.project_id == pid, tasks.c.data_row_id == theirs)
            .values(lease_user_id=member.user_id, lease_until=until)
        )
    member.patch(f"/annotations/{made['id']}", json={"lead_time": 4})  # a change saves too
    assert task_row(engine, pid, theirs).lease_user_id is None


def test_a_project_lists_its_annotations_by_pages_and_filters(
    engine: Engine, tenant: Tenant, member: Tenant
) -> None:
    project, ids = make_tasks(engine, tenant, 3)
    pid = project["id"]
    made = [
        annotate(tenant, pid, ids[0]).json(),
        annotate(member, pid, ids[1]).json(),  # members may do all of it
        annotate(tenant, pid, ids[1], result=[], was_cancelled=True).json(),
        annotate(member, pid, ids[2], result=[mood()]).json(),
    ]
    assert all(m.get("id") for m in made)
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = tenant.get(f"/projects/{pid}/annotations", params=params).json()
        seen += [a["id"] for a in page["items"]]
        if page["next_cursor"] is None:
            break
        params["after"] = page["next_cursor"]
    assert seen == [m["id"] for m in made]

    def ids_for(**filters: Any) -> list[int]:
        page = tenant.get(f"/projects/{pid}/annotations", params=filters).json()
        return [a["id"] for a in page["items"]]

    assert ids_for(data_row_id=ids[1]) == [made[1]["id"], made[2]["id"]]
    assert ids_for(completed_by=member.user_id) == [made[1]["id"], made[3]["id"]]
    assert ids_for(was_cancelled="true") == [made[2]["id"]]
    assert ids_for(was_cancelled="false", completed_by=tenant.user_id) == [made[0]["id"]]
    mark = datetime.now(UTC)
    member.patch(f"/annotations/{made[0]['id']}", json={"ground_truth": True})
    assert ids_for(updated_after=mark.isoformat()) == [made[0]["id"]]
    assert ids_for(ground_truth="true") == [made[0]["id"]]
    changed = tenant.get(f"/annotations/{made[0]['id']}").json()
    assert (changed["completed_by"], changed["updated_by"]) == (tenant.user_id, member.user_id)
    assert ids_for(updated_after=(mark + timedelta(hours=1)).isoformat()) == []
    assert tenant.get(f"/projects/{pid}/annotations", params={"nope": 1}).status_code == 422
    # The project's name works as well as its id.
    assert len(tenant.get(f"/projects/{project['name']}/annotations").json()["items"]) == 4
    assert member.delete(f"/annotations/{made[0]['id']}").status_code == 204


def test_a_repeated_idempotency_key_creates_once(engine: Engine, tenant: Tenant) -> None:
    project, (row_id,) = make_tasks(engine, tenant, 1)
    path = f"/projects/{project['id']}/tasks/{row_id}/annotations"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = tenant.post(path, json={"result": [box()]}, headers=key)
    again = tenant.post(path, json={"result": [box()]}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    with engine.connect() as conn:
        stored = conn.execute(
            select(annotation_rows.c.id).where(annotation_rows.c.project_id == project["id"])
        ).all()
    assert len(stored) == 1
    assert task_row(engine, project["id"], row_id).total_annotations == 1
    other = tenant.post(path, json={"result": []}, headers=key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_an_annotation_names_the_prediction_it_started_from(
    engine: Engine, tenant: Tenant, sdk: Client
) -> None:
    project, ids = make_tasks(engine, tenant, 2)
    with engine.begin() as conn:
        mine, other_task = labels.insert_predictions(
            conn,
            [
                {
                    "org_id": tenant.org_id,
                    "project_id": project["id"],
                    "data_row_id": i,
                    "result": [box()],
                    "model_version": "m1",
                }
                for i in ids
            ],
        )
    r = annotate(tenant, project["id"], ids[0], parent_prediction=mine)
    assert r.status_code == 201, r.text
    assert r.json()["parent_prediction"] == mine
    assert sdk.get_annotation(r.json()["id"]).parent_prediction == mine
    # Another task's prediction, or none at all, is refused and nothing is stored.
    for wrong in (other_task, other_task + 1000):
        r = annotate(tenant, project["id"], ids[0], parent_prediction=wrong)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"] == {"parent_prediction": wrong}
    stored = tenant.get(f"/projects/{project['id']}/tasks/{ids[0]}/annotations").json()["items"]
    assert [a["parent_prediction"] for a in stored] == [mine]
    a = sdk.get_project(project["id"]).create_annotation(
        ids[1], [box()], parent_prediction=other_task
    )
    assert a.parent_prediction == other_task


def test_the_sdk(engine: Engine, tenant: Tenant, sdk: Client) -> None:
    made, ids = make_tasks(engine, tenant, 2)
    project = sdk.get_project(made["id"])
    a = project.create_annotation(ids[0], [box()], lead_time=3.5)
    assert (a.version, a.lead_time, a.data_row_id, a.result) == (1, 3.5, ids[0], [box()])
    skip = project.create_annotation(ids[1], [], was_cancelled=True)
    assert sdk.get_annotation(a.id) == a
    assert [x.id for x in project.annotations()] == [a.id, skip.id]
    assert [x.id for x in project.annotations(page_size=1, was_cancelled=True)] == [skip.id]
    assert [x.id for x in project.annotations(data_row_id=ids[0])] == [a.id]
    assert project.refresh().task_counts.to_dict() == {"unlabeled": 0, "labeled": 1, "skipped": 1}

    stale = sdk.get_annotation(a.id)
    a.update(result=[mood()], ground_truth=True)
    assert (a.version, a.result, a.ground_truth) == (2, [mood()], True)
    with pytest.raises(ConflictError) as caught:
        stale.update(result=[box()])
    assert caught.value.code == "version_mismatch"
    stale.refresh().update(lead_time=9)
    assert (stale.version, stale.result, stale.lead_time) == (3, [mood()], 9)
    assert a.update(lead_time=1, force=True).version == 4
    with pytest.raises(InvalidError) as bad:
        project.create_annotation(ids[0], [box(to_name="caption")])
    assert bad.value.code == "region_mismatch" and bad.value.details["index"] == 0
    a.delete()
    with pytest.raises(NotFoundError):
        sdk.get_annotation(a.id)
    assert project.refresh().task_counts.to_dict() == {"unlabeled": 1, "labeled": 0, "skipped": 1}


def test_the_cli(engine: Engine, tenant: Tenant, cli: Any) -> None:
    project, ids = make_tasks(engine, tenant, 2)
    first = annotate(tenant, project["id"], ids[0], result=[box(), mood()]).json()
    skip = annotate(tenant, project["id"], ids[1], result=[], was_cancelled=True).json()
    r = cli("projects", "annotations", project["name"])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if str(first["id"]) in line.split()[:2]]
    assert lines and str(ids[0]) in lines[0] and " 2 " in lines[0]
    assert str(skip["id"]) in r.output and "yes" in r.output
    r = cli("projects", "annotations", str(project["id"]), "--task", str(ids[1]), "--json")
    assert r.exit_code == 0, r.output
    listed = orjson.loads(r.output)
    assert [a["id"] for a in listed] == [skip["id"]] and listed[0]["was_cancelled"] is True
    r = cli("projects", "annotations", "no-such-project")
    assert r.exit_code == 1 and "no project named" in r.output
