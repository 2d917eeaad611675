"""Generic jobs on both databases: runners by kind, leases, cancel, the job list's cursor,
idempotency fingerprints, staged uploads no job owns, dataset deletion as a job."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import Tenant
from tether.catalog import deletion
from tether.config import Settings
from tether.db.tables import data_rows, jobs
from tether.imports import submit
from tether.imports.runner import import_runner, run_import
from tether.jobs import service, worker

LEASE = timedelta(seconds=30)


def ndjson(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def new_job(engine: Engine, tenant: Tenant, kind: str, **kw: Any) -> str:
    with engine.begin() as conn:
        job, _ = service.create(conn, tenant.org_id, kind, kw.pop("params", {}), **kw)
    return str(job["id"])


def row_count(engine: Engine, dataset_id: int) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(data_rows)
        return int(conn.execute(query.where(data_rows.c.dataset_id == dataset_id)).scalar_one())


# --- runners by kind ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nope", "Sync", "IMPORT", "import "])
def test_a_job_of_a_kind_without_runner_fails_with_a_message(
    app: Any, engine: Engine, tenant: Tenant, kind: str
) -> None:
    job_id = new_job(engine, tenant, kind)
    app.state.queue.enqueue(job_id)  # the test queue runs it at once
    job = tenant.get(f"/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert repr(kind) in job["message"] and "no runner" in job["message"]
    assert job["finished_at"] is not None


def test_the_runtime_registers_every_kind(app: Any) -> None:
    assert set(app.state.queue.runners) == {
        "import",
        "delete_dataset",
        "sync",
        "sync_part",
        "probe",
        "predictions",
        "add_tasks",
        "export",
    }
    chores = {getattr(c, "func", c).__name__ for c in app.state.queue.chores}
    assert {"remove_stale_uploads", "purge_expired", "start_due_syncs"} <= chores


# --- leases ----------------------------------------------------------------------------------


def test_a_claimed_job_is_never_claimed_twice_while_its_lease_holds(
    engine: Engine, tenant: Tenant
) -> None:
    job_id = new_job(engine, tenant, "import")
    stop = threading.Event()
    first = worker.claim(engine, job_id, "w1", LEASE, stop)
    assert first is not None
    for other in ("w2", "w3", "w1"):
        assert worker.claim(engine, job_id, other, LEASE, stop) is None
    assert first.renew()
    with engine.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
    assert (row.status, row.claimed_by) == ("running", "w1")


def test_a_slow_runner_keeps_its_job_while_its_heartbeat_renews_the_lease(
    engine: Engine, tenant: Tenant
) -> None:
    job_id = new_job(engine, tenant, "slow")
    lease = timedelta(seconds=0.4)
    taken: list[object] = []

    def slow(run: worker.JobRun) -> None:
        deadline = time.monotonic() + 4 * lease.total_seconds()
        while time.monotonic() < deadline:  # no progress recorded: only the heartbeat
            taken.append(worker.claim(engine, job_id, "thief", lease, threading.Event()))
            time.sleep(0.05)
        run.check_stop()

    worker.execute(engine, job_id, {"slow": slow}, "slow-worker", lease)
    assert len(taken) > 10 and not any(taken), "nobody else got the job"
    job = tenant.get(f"/jobs/{job_id}").json()
    assert (job["status"], job["claimed_by"]) == ("completed", "slow-worker")


def test_a_runner_that_lost_its_lease_writes_nothing_more(engine: Engine, tenant: Tenant) -> None:
    job_id = new_job(engine, tenant, "import")
    stop = threading.Event()
    slow = worker.claim(engine, job_id, "slow", timedelta(milliseconds=1), stop)
    assert slow is not None
    time.sleep(0.01)
    fresh = worker.claim(engine, job_id, "fresh", LEASE, stop)
    assert fresh is not None, "an expired lease is taken over"
    assert not slow.renew()
    with pytest.raises(worker.LeaseLost), engine.begin() as conn:
        slow.record(conn, 10, {"created": 10})
    with engine.begin() as conn:
        assert fresh.record(conn, 3, {"created": 3})
    job = tenant.get(f"/jobs/{job_id}").json()
    assert job["progress"]["done"] == 3 and job["counts"]["created"] == 3
    assert job["claimed_by"] == "fresh"


def test_a_resumed_job_keeps_its_first_started_at(engine: Engine, tenant: Tenant) -> None:
    job_id = new_job(engine, tenant, "import")
    stop = threading.Event()
    assert worker.claim(engine, job_id, "a", timedelta(milliseconds=1), stop)
    started = tenant.get(f"/jobs/{job_id}").json()["started_at"]
    time.sleep(0.02)
    again = worker.claim(engine, job_id, "b", LEASE, stop)
    assert again is not None
    job = tenant.get(f"/jobs/{job_id}").json()
    assert job["started_at"] == started and job["claimed_by"] == "b"


def test_recovery_requeues_only_jobs_whose_lease_ran_out(engine: Engine, tenant: Tenant) -> None:
    stop = threading.Event()
    expired, held, queued = (new_job(engine, tenant, "import") for _ in range(3))
    assert worker.claim(engine, expired, "dead", timedelta(milliseconds=1), stop)
    assert worker.claim(engine, held, "alive", LEASE, stop)
    time.sleep(0.01)
    with engine.connect() as conn:
        stale = set(worker.abandoned(conn))
    assert expired in stale and held not in stale and queued not in stale


# --- cancel ----------------------------------------------------------------------------------


def test_cancelling_a_running_import_counts_exactly_what_stayed(
    engine: Engine, tenant: Tenant, settings: Settings
) -> None:
    ds = tenant.dataset()
    total = 200 * settings.import_chunk_rows
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    upload = settings.uploads_dir / f"cancel-{uuid.uuid4().hex}.upload"
    upload.write_bytes(
        ndjson(
            [
                {"row_data": f"s3://b/{i}.jpg", "global_key": f"c{ds['id']}-{i}"}
                for i in range(total)
            ]
        )
    )
    job_id = new_job(
        engine,
        tenant,
        "import",
        params={"_upload": str(upload), "format": "ndjson"},
        dataset_id=ds["id"],
        counts={"created": 0, "updated": 0},
    )
    runner = threading.Thread(target=run_import, args=(engine, job_id, settings.import_chunk_rows))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while tenant.get(f"/jobs/{job_id}").json()["progress"]["done"] < total // 10:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        asked = tenant.post(f"/jobs/{job_id}/cancel")
        assert asked.status_code == 200, asked.text
    finally:
        runner.join(60)
    assert asked.json()["status"] in ("running", "canceled")
    job = tenant.get(f"/jobs/{job_id}").json()
    landed = row_count(engine, ds["id"])
    assert job["status"] == "canceled", job
    assert landed < total, "the cancel stopped the import"
    assert job["counts"] == {"created": landed, "updated": 0, "failed": 0}
    assert job["progress"]["done"] == landed
    assert f"{landed} rows created" in job["message"] and "stay" in job["message"]
    assert "delete" in job["message"]
    assert not upload.exists()


def test_cancelling_a_queued_job_ends_it_at_once(engine: Engine, tenant: Tenant) -> None:
    job_id = new_job(engine, tenant, "import", params={"_upload": "/nowhere"})
    job = tenant.post(f"/jobs/{job_id}/cancel").json()
    assert job["status"] == "canceled" and "nothing was done" in job["message"]
    run_import(engine, job_id)  # a queue message still on its way does nothing
    assert tenant.get(f"/jobs/{job_id}").json()["status"] == "canceled"
    assert tenant.post(f"/jobs/{job_id}/cancel").status_code == 409


# --- the job list ----------------------------------------------------------------------------


def test_the_job_list_pages_through_every_job_with_a_cursor(engine: Engine, tenant: Tenant) -> None:
    ds = tenant.dataset()
    made = [new_job(engine, tenant, "import", dataset_id=ds["id"]) for _ in range(7)]
    made += [new_job(engine, tenant, "other") for _ in range(3)]
    for limit in (1, 3, 10, 500):
        seen: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        while True:
            page = tenant.get("/jobs", params=params).json()
            seen += [j["id"] for j in page["items"]]
            if page["next_cursor"] is None:
                break
            params["after"] = page["next_cursor"]
        assert seen == made[::-1], limit
    kinds = tenant.get("/jobs", params={"kind": "import"}).json()["items"]
    assert [j["id"] for j in kinds] == made[:7][::-1]
    by_ds = tenant.get("/jobs", params={"dataset_id": ds["id"], "status": "queued"}).json()
    assert [j["id"] for j in by_ds["items"]] == made[:7][::-1]
    assert tenant.get("/jobs", params={"status": "completed"}).json()["items"] == []


@pytest.mark.parametrize(
    "params", [{"status": "done"}, {"after": "0123456789abcdef"}, {"limit": 501}]
)
def test_bad_job_list_parameters_are_422(tenant: Tenant, params: dict[str, Any]) -> None:
    r = tenant.get("/jobs", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"


def test_another_organizations_job_is_no_cursor(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = other_tenant.import_rows(other_tenant.dataset()["id"], b"s3://b/1.jpg\n")
    assert tenant.get("/jobs", params={"after": theirs["id"]}).status_code == 422


# --- idempotency -----------------------------------------------------------------------------

BODY = ndjson([{"row_data": f"s3://b/{i}.jpg"} for i in range(3)])


@pytest.mark.parametrize(
    "change",
    [
        {"content": BODY + b'{"row_data": "s3://b/extra.jpg"}\n'},
        {"content": BODY[:-1]},
        {"dataset": True},
        {"params": {"upsert": "true"}},
        {"params": {"format": "ndjson"}},
        {"params": {"media_type": "IMAGE"}},
        {"params": {"filename": "rows.ndjson"}},
    ],
    ids=["more-rows", "other-bytes", "dataset", "upsert", "format", "media_type", "filename"],
)
def test_an_idempotency_key_reused_for_another_request_is_422(
    tenant: Tenant, settings: Settings, change: dict[str, Any]
) -> None:
    ds, other = tenant.dataset(), tenant.dataset()
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = tenant.post(f"/datasets/{ds['id']}/data-rows", content=BODY, headers=key)
    assert first.status_code == 202
    staged = set(settings.uploads_dir.iterdir())
    target = other if change.get("dataset") else ds
    r = tenant.post(
        f"/datasets/{target['id']}/data-rows",
        content=change.get("content", BODY),
        params=change.get("params", {}),
        headers=key,
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert (
        "another request" in error["message"] and error["details"]["job_id"] == first.json()["id"]
    )
    assert set(settings.uploads_dir.iterdir()) == staged, "the refused upload is not kept"
    again = tenant.post(f"/datasets/{ds['id']}/data-rows", content=BODY, headers=key)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert row_count_api(tenant, ds["id"]) == 3 and row_count_api(tenant, other["id"]) == 0


def row_count_api(tenant: Tenant, dataset_id: int) -> int:
    return len(tenant.get("/data-rows", params={"dataset_id": dataset_id}).json()["items"])


# --- staged uploads --------------------------------------------------------------------------


def test_staged_uploads_no_job_owns_are_removed(
    engine: Engine, tenant: Tenant, settings: Settings
) -> None:
    folder = settings.uploads_dir
    folder.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    old = time.time() - 7200

    def staged(name: str, age: float | None = old) -> Path:
        path = folder / f"{tag}-{name}.upload"
        path.write_bytes(b"s3://b/1.jpg\n")
        if age is not None:
            os.utime(path, (age, age))
        return path

    orphan, young = staged("orphan"), staged("young", None)
    queued, running, finished = staged("queued"), staged("running"), staged("finished")
    predicted = staged("predictions")  # another kind's upload (a predictions import)
    other_file = folder / f"{tag}-notes.txt"
    other_file.write_text("not an upload")
    os.utime(other_file, (old, old))
    new_job(engine, tenant, "import", params={"_upload": str(queued)})
    new_job(engine, tenant, "predictions", params={"_upload": str(predicted)})
    running_id = new_job(engine, tenant, "import", params={"_upload": str(running)})
    assert worker.claim(engine, running_id, "w", LEASE, threading.Event())
    done_id = new_job(engine, tenant, "import", params={"_upload": str(finished)})
    tenant.post(f"/jobs/{done_id}/cancel")

    gone = submit.remove_stale_uploads(engine, folder, 3600)
    assert set(gone) >= {orphan, finished}
    left = {p for p in folder.iterdir() if p.name.startswith(tag)}
    assert left == {young, queued, running, predicted, other_file}


def test_every_worker_removes_stale_uploads_on_its_rounds(app: Any, settings: Settings) -> None:
    folder = settings.uploads_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"round-{uuid.uuid4().hex}.upload"
    path.write_bytes(b"x")
    old = time.time() - settings.upload_max_age_seconds - 60
    os.utime(path, (old, old))
    app.state.queue.keep_house()
    assert not path.exists()


# --- deleting a dataset ----------------------------------------------------------------------


def test_a_deleted_dataset_is_gone_at_once_and_its_rows_go_in_chunks(
    engine: Engine, tenant: Tenant
) -> None:
    ds = tenant.dataset()
    rows = [{"row_data": f"s3://b/{i}.jpg", "global_key": f"del{ds['id']}-{i}"} for i in range(45)]
    tenant.import_rows(ds["id"], ndjson(rows))
    queued: list[str] = []
    answer = deletion.submit(
        engine, queued.append, tenant.org_id, ds["id"], tenant.user_id, role="admin"
    )
    assert answer["deleted_rows"] == 45 and answer["status"] == "queued"
    assert queued == [answer["id"]]
    # Gone for every lookup before any row went; its name is free again.
    assert tenant.get(f"/datasets/{ds['id']}").status_code == 404
    assert ds["id"] not in {d["id"] for d in tenant.get("/datasets").json()["items"]}
    assert tenant.delete(f"/datasets/{ds['id']}").status_code == 404
    r = tenant.post(f"/datasets/{ds['id']}/data-rows", content=b"s3://b/late.jpg\n")
    assert r.status_code == 404
    again = tenant.dataset(ds["name"])
    assert again["id"] > ds["id"]
    assert tenant.post(f"/jobs/{answer['id']}/cancel").status_code == 409
    assert row_count(engine, ds["id"]) == 45

    recorded: list[int] = []
    real = worker.JobRun.record

    def spy(self: worker.JobRun, conn: Any, done: int, *args: Any) -> bool:
        recorded.append(done)
        return real(self, conn, done, *args)

    worker.JobRun.record = spy  # type: ignore[method-assign]
    try:
        runners = {deletion.KIND: deletion.delete_runner(chunk_rows=10)}
        worker.execute(engine, answer["id"], runners, "w", LEASE)
    finally:
        worker.JobRun.record = real  # type: ignore[method-assign]
    assert recorded == [10, 20, 30, 40, 45]
    job = tenant.get(f"/jobs/{answer['id']}").json()
    assert job["status"] == "completed"
    assert job["counts"] == {"deleted": 45, "failed": 0}
    assert job["progress"] == {"done": 45, "total": 45}
    assert row_count(engine, ds["id"]) == 0
    # Its global keys are free again.
    job = tenant.import_rows(again["id"], ndjson(rows[:3]))
    assert job["counts"] == {"created": 3, "updated": 0, "failed": 0}


def test_an_import_queued_for_a_dataset_being_deleted_fails_saying_so(
    engine: Engine, tenant: Tenant, settings: Settings
) -> None:
    ds = tenant.dataset()
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    upload = settings.uploads_dir / f"late-{uuid.uuid4().hex}.upload"
    upload.write_bytes(b"s3://b/1.jpg\n")
    job_id = new_job(engine, tenant, "import", params={"_upload": str(upload)}, dataset_id=ds["id"])
    deletion.submit(engine, lambda _id: None, tenant.org_id, ds["id"], role="admin")
    worker.execute(engine, job_id, {"import": import_runner(50)}, "w", LEASE)
    job = tenant.get(f"/jobs/{job_id}").json()
    assert job["status"] == "failed" and "deleted" in job["message"]
    assert row_count(engine, ds["id"]) == 0


def test_an_empty_body_with_a_used_key_asks_for_its_job(tenant: Tenant) -> None:
    """The SDK's retry of a one-shot iterator: it cannot send the rows again."""
    ds = tenant.dataset()
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = tenant.post(f"/datasets/{ds['id']}/data-rows", content=BODY, headers=key)
    again = tenant.post(f"/datasets/{ds['id']}/data-rows", content=b"", headers=key)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    unused = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    r = tenant.post(f"/datasets/{ds['id']}/data-rows", content=b"", headers=unused)
    assert r.status_code == 422 and "empty" in r.json()["error"]["message"]
