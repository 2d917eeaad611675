"""Predictions: a bulk import job matched to tasks by data row id or global key (tether's
items, Label Studio's predictions and tasks), messy files read as imports read them, every
bad item a per-item error while the good ones land; listing and deleting by task and id."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, update

from tests.conftest import Tenant
from tests.projects.test_annotations import CONFIG, box, make_tasks, mood, task_row
from tether import Client
from tether.db.tables import jobs
from tether.jobs import service, worker
from tether.projects import predictions


def keys_of(tenant: Tenant, ids: list[int]) -> list[str]:
    return [tenant.get(f"/data-rows/{i}").json()["global_key"] for i in ids]


def send(tenant: Tenant, project: Any, body: bytes | str, **params: Any) -> dict[str, Any]:
    """Import and return the finished job (the test queue runs it at once)."""
    r = tenant.post(f"/projects/{project}/predictions", content=body, params=params)
    assert r.status_code == 202, r.text
    job = tenant.get(f"/jobs/{r.json()['id']}").json()
    assert job["kind"] == "predictions" and job["project_id"] is not None
    return job  # type: ignore[no-any-return]


def errors_by_index(tenant: Tenant, job_id: str) -> dict[int, dict[str, Any]]:
    return {e["index"]: e for e in tenant.errors(job_id)}


def stored(tenant: Tenant, project_id: int, row_id: int) -> list[dict[str, Any]]:
    r = tenant.get(f"/projects/{project_id}/tasks/{row_id}/predictions")
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def test_good_items_land_and_each_bad_one_is_an_error(engine: Engine, tenant: Tenant) -> None:
    project, ids = make_tasks(engine, tenant, 3)
    _elsewhere, (other_row,) = make_tasks(engine, tenant, 1)  # a row, not a task of project
    keys = keys_of(tenant, ids)
    pid = project["id"]
    items = [
        {"data_row_id": ids[0], "result": [box()], "model_version": "v1", "score": 0.9},
        {"global_key": keys[1], "result": [box(), mood()], "model_version": "v1", "score": 0.4},
        {"global_key": "no-such-key", "result": [box()]},
        {"data_row_id": other_row, "result": [box()]},
        {"data_row_id": ids[2], "result": [box(to_name="caption")]},
        {"data_row_id": ids[2], "result": [box()], "score": "high"},
        {"result": [box()], "score": 0.1},
        {"data_row_id": ids[2], "result": "a box"},
        {"data_row_id": "twelve", "result": []},
        {"data_row_id": ids[0], "global_key": keys[1], "result": []},
        [1, 2],
        {"data_row_id": ids[2], "result": [mood()], "model_version": 7},
    ]
    job = send(tenant, pid, orjson.dumps(items))
    assert job["status"] == "completed_with_errors", job
    assert job["counts"] == {"created": 3, "failed": 9}
    assert job["progress"]["done"] == len(items) and job["format"] == "json"
    errors = errors_by_index(tenant, job["id"])
    assert {i: e["code"] for i, e in errors.items()} == {
        2: "unknown_global_key",
        3: "not_a_task",
        4: "region_mismatch",
        5: "bad_score",
        6: "missing_task",
        7: "bad_result",
        8: "bad_task_id",
        9: "task_mismatch",
        10: "malformed_item",
    }
    assert errors[2]["global_key"] == "no-such-key"
    assert f"data row {other_row} is no task of project {pid}" in errors[3]["message"]
    assert errors[4]["message"].startswith("result[0]: to_name 'caption'")
    assert errors[4]["details"] == {"region": 0}

    first = stored(tenant, pid, ids[0])
    assert [(p["result"], p["model_version"], p["score"]) for p in first] == [([box()], "v1", 0.9)]
    assert first[0]["task"] == first[0]["data_row_id"] == ids[0] and first[0]["project"] == pid
    assert [p["score"] for p in stored(tenant, pid, ids[1])] == [0.4]
    assert [(p["model_version"], p["score"]) for p in stored(tenant, pid, ids[2])] == [("7", None)]
    assert [task_row(engine, pid, i).total_predictions for i in ids] == [1, 1, 1]
    assert task_row(engine, pid, ids[0]).status == "unlabeled"  # predictions do not label


def test_messy_files_bom_crlf_and_numbers_as_strings(engine: Engine, tenant: Tenant) -> None:
    project, ids = make_tasks(engine, tenant, 2)
    keys = keys_of(tenant, ids)
    pid = project["id"]
    lines = [
        {"data_row_id": str(ids[0]), "result": [box()], "score": "0.75", "model_version": "m"},
        {"global_key": keys[1], "result": [mood()], "score": " 1 "},
    ]
    ndjson = b"\xef\xbb\xbf" + b"\r\n".join(orjson.dumps(x) for x in lines) + b"\r\n\r\n"
    job = send(tenant, pid, ndjson)
    assert job["status"] == "completed", job
    assert (job["format"], job["counts"]["created"], job["progress"]["total"]) == ("ndjson", 2, 2)
    assert [p["score"] for p in stored(tenant, pid, ids[0])] == [0.75]
    assert [p["score"] for p in stored(tenant, pid, ids[1])] == [1.0]

    # A pretty-printed JSON array with a BOM and CRLF line ends; one broken item among them.
    text = orjson.dumps(lines, option=orjson.OPT_INDENT_2).decode().replace("\n", "\r\n")
    broken = text.replace("[\r\n", '[\r\n  {"data_row_id": 1, "result": NaN},\r\n', 1)
    job = send(tenant, pid, "\ufeff" + broken, filename="preds.JSON")
    assert (job["status"], job["format"], job["counts"]) == (
        "completed_with_errors",
        "json",
        {"created": 2, "failed": 1},
    )
    (error,) = tenant.errors(job["id"])
    assert error["index"] == 0 and error["code"] == "invalid_value" and "NaN" in error["message"]
    assert [len(stored(tenant, pid, i)) for i in ids] == [2, 2]


def test_label_studio_shapes(engine: Engine, tenant: Tenant) -> None:
    project, ids = make_tasks(engine, tenant, 3)
    keys = keys_of(tenant, ids)
    pid = project["id"]
    items = [
        {  # a task as Label Studio's export (and tether's) writes it
            "id": ids[0],
            "data": {"image": "s3://b/0.jpg"},
            "annotations": [],
            "predictions": [
                {"model_version": "yolo", "score": 0.5, "result": [box()]},
                {"model_version": "yolo", "score": 0.6, "result": [box(from_name="x")]},
                {"model_version": "yolo", "score": "0.7", "result": [mood()]},
            ],
        },
        {"global_key": keys[1], "data": {}, "predictions": [{"result": [box()], "score": 1}]},
        {"task": ids[2], "result": [box()], "model_version": "lsp", "score": 0.2, "id": 999},
        {"id": ids[2], "predictions": []},
        {"id": ids[2], "predictions": "none"},
    ]
    job = send(tenant, pid, orjson.dumps(items))
    assert job["counts"] == {"created": 4, "failed": 3}, job
    errors = tenant.errors(job["id"])
    assert [(e["index"], e["code"]) for e in errors] == [
        (0, "region_mismatch"),
        (3, "no_predictions"),
        (4, "malformed_item"),
    ]
    assert errors[0]["details"] == {"prediction": 1, "region": 0}
    assert errors[0]["message"].startswith("predictions[1]: result[0]: from_name 'x'")
    assert [p["score"] for p in stored(tenant, pid, ids[0])] == [0.5, 0.7]
    assert [p["score"] for p in stored(tenant, pid, ids[1])] == [1.0]
    assert [p["model_version"] for p in stored(tenant, pid, ids[2])] == ["lsp"]
    # A task of an unknown global key: each of its predictions is an error.
    body = {"global_key": "nope", "predictions": [{"result": []}, {"result": []}]}
    job = send(tenant, pid, orjson.dumps(body))
    assert job["counts"] == {"created": 0, "failed": 2}
    assert [e["details"] for e in tenant.errors(job["id"])] == [
        {"prediction": 0},
        {"prediction": 1},
    ]


def test_files_that_hold_no_predictions_are_refused_at_once(
    engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    project, _ids = make_tasks(engine, tenant, 1)
    pid = project["id"]
    for body in (b"", b"data_row_id,result\n1,[]\n", b"\xff\xfe{\x00"):
        r = tenant.post(f"/projects/{pid}/predictions", content=body)
        assert r.status_code == 422, (body, r.text)
    r = tenant.post(f"/projects/{pid}/predictions", content=b"[]", params={"format": "csv"})
    assert r.status_code == 422
    assert other_tenant.post(f"/projects/{pid}/predictions", content=b"[]").status_code == 404
    assert tenant.get("/jobs", params={"kind": "predictions"}).json()["items"] == []


def test_a_repeated_idempotency_key_imports_once(engine: Engine, tenant: Tenant) -> None:
    project, (row_id,) = make_tasks(engine, tenant, 1)
    body = orjson.dumps([{"data_row_id": row_id, "result": [box()]}])
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    path = f"/projects/{project['id']}/predictions"
    first = tenant.post(path, content=body, headers=headers).json()
    again = tenant.post(path, content=body, headers=headers).json()
    assert first["id"] == again["id"]
    assert len(stored(tenant, project["id"], row_id)) == 1


def test_delete_and_other_organizations(
    engine: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    project, (row_id,) = make_tasks(engine, tenant, 1)
    pid = project["id"]
    send(tenant, pid, orjson.dumps([{"data_row_id": row_id, "result": [box()]}] * 2))
    first, second = stored(tenant, pid, row_id)
    assert other_tenant.delete(f"/predictions/{first['id']}").status_code == 404
    assert other_tenant.get(f"/projects/{pid}/tasks/{row_id}/predictions").status_code == 404
    assert tenant.get(f"/projects/{pid}/tasks/{2**40}/predictions").status_code == 404
    assert tenant.delete(f"/predictions/{first['id']}").status_code == 204
    assert tenant.delete(f"/predictions/{first['id']}").status_code == 404
    assert stored(tenant, pid, row_id) == [second]
    assert task_row(engine, pid, row_id).total_predictions == 1


def test_the_sdk(engine: Engine, tenant: Tenant, sdk: Client, tmp_path: Path) -> None:
    made, ids = make_tasks(engine, tenant, 2)
    project = sdk.get_project(made["id"])
    job = project.upload_predictions(
        [
            {"data_row_id": ids[0], "result": [box()], "model_version": "v2", "score": 0.3},
            {"data_row_id": ids[1], "result": [box(type="choices")]},
        ]
    )
    assert job.done and job.status == "completed_with_errors"
    assert (job.counts.to_dict()["created"], job.counts.failed) == (1, 1)
    assert [(e.index, e.code) for e in job.errors] == [(1, "region_mismatch")]
    (prediction,) = project.predictions(ids[0])
    assert (prediction.model_version, prediction.score, prediction.result) == ("v2", 0.3, [box()])
    path = tmp_path / "predictions.ndjson"
    path.write_bytes(orjson.dumps({"global_key": keys_of(tenant, ids)[1], "result": [mood()]}))
    job = project.upload_predictions(path)
    assert job.status == "completed" and job.format == "ndjson"
    assert [p.result for p in project.predictions(ids[1])] == [[mood()]]
    queued = project.upload_predictions(path, wait=False)
    assert queued.kind == "predictions"
    prediction.delete()
    assert project.predictions(ids[0]) == []
    with pytest.raises(FileNotFoundError):
        project.upload_predictions(tmp_path / "missing.json")


def test_the_cli(engine: Engine, tenant: Tenant, cli: Any, tmp_path: Path) -> None:
    project, ids = make_tasks(engine, tenant, 2)
    good = tmp_path / "good.json"
    good.write_text(orjson.dumps([{"data_row_id": i, "result": [box()]} for i in ids]).decode())
    r = cli("projects", "predictions", project["name"], str(good))
    assert r.exit_code == 0, r.output
    assert "completed" in r.output and "created 2" in r.output
    mixed = tmp_path / "mixed.ndjson"
    mixed.write_text(
        orjson.dumps({"global_key": "missing", "result": []}).decode()
        + "\n"
        + orjson.dumps({"data_row_id": ids[0], "result": [box()]}).decode()
        + "\n"
    )
    r = cli("projects", "predictions", str(project["id"]), str(mixed))
    assert r.exit_code == 2, r.output
    assert "created 1" in r.output and "failed 1" in r.output
    assert "unknown_global_key" in r.output and "no data row has global key 'missing'" in r.output
    r = cli("projects", "predictions", project["name"], str(tmp_path / "none.json"))
    assert r.exit_code == 1 and "no file" in r.output
    assert [task_row(engine, project["id"], i).total_predictions for i in ids] == [2, 1]


def test_a_config_without_the_control_refuses_predictions_of_it(
    engine: Engine, tenant: Tenant
) -> None:
    boxes_only = CONFIG.replace(
        '<Choices name="mood" toName="caption"><Choice value="happy"/></Choices>', ""
    )
    project, (row_id,) = make_tasks(engine, tenant, 1, boxes_only)
    job = send(tenant, project["id"], orjson.dumps({"data_row_id": row_id, "result": [mood()]}))
    (error,) = tenant.errors(job["id"])
    assert error["code"] == "region_mismatch" and "from_name 'mood'" in error["message"]


def test_a_resumed_job_goes_on_after_what_it_wrote(
    engine: Engine, tenant: Tenant, settings: Any
) -> None:
    """A job that a worker left after two items (its ``done``) writes only the rest."""
    project, ids = make_tasks(engine, tenant, 3)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    upload = settings.uploads_dir / f"{uuid.uuid4().hex}.upload"
    upload.write_bytes(b"\n".join(orjson.dumps({"data_row_id": i, "result": []}) for i in ids))
    with engine.begin() as conn:
        job, _ = service.create(
            conn,
            tenant.org_id,
            predictions.KIND,
            {"_upload": str(upload), "format": "ndjson"},
            project_id=project["id"],
            counts={"created": 2},
        )
        conn.execute(update(jobs).where(jobs.c.id == job["id"]).values(done=2))
    runners = {predictions.KIND: predictions.predictions_runner(chunk_items=1)}
    worker.execute(engine, job["id"], runners, "test", timedelta(minutes=1))
    done = tenant.get(f"/jobs/{job['id']}").json()
    assert done["status"] == "completed" and done["counts"] == {"created": 3, "failed": 0}
    assert [len(stored(tenant, project["id"], i)) for i in ids] == [0, 0, 1]
    assert not upload.exists()  # the job's file goes when it ends


def test_a_job_whose_project_went_fails_clearly(
    engine: Engine, tenant: Tenant, settings: Any
) -> None:
    project, (row_id,) = make_tasks(engine, tenant, 1)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    upload = settings.uploads_dir / f"{uuid.uuid4().hex}.upload"
    upload.write_bytes(orjson.dumps([{"data_row_id": row_id, "result": []}]))
    with engine.begin() as conn:  # queued, not yet run
        job, _ = service.create(
            conn,
            tenant.org_id,
            predictions.KIND,
            {"_upload": str(upload), "format": "json"},
            project_id=project["id"],
        )
    assert tenant.delete(f"/projects/{project['id']}").status_code == 204
    runners = {predictions.KIND: predictions.predictions_runner()}
    worker.execute(engine, job["id"], runners, "test", timedelta(minutes=1))
    failed = tenant.get(f"/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["message"] == f"no project with id {project['id']}"
    assert not upload.exists()
