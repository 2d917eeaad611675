"""Target storages of a project: their CRUD and options through the API, SDK and CLI, and
exports to a local folder -- the body Label Studio writes, field by field; only new and
changed annotations written; deletes with and without can_delete_objects; skips; auto
export deduplicated; two exports of one storage at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from tests.projects.targets_setup import (
    REGION,
    Api,
    counts,
    export,
    files,
    labeled,
    make_api,
    target,
)
from tests.test_sdk_transport import AppTransport
from tether import Client
from tether.db.tables import annotations as annotation_rows
from tether.db.tables import jobs, storages, tasks
from tether.jobs.service import get as get_job
from tether.projects import target_export
from tether.projects.targets import queue_auto_exports


@pytest.fixture(scope="module")
def api(settings: Any, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from make_api(settings, engine, tmp_path_factory)


def local_body(project_id: int, folder: Path, **options: Any) -> dict[str, Any]:
    return {"type": "local", "project_id": project_id, "path": str(folder), **options}


# --- CRUD and options ------------------------------------------------------------------


def slowed_local_writes(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Local writes take 30 ms each (an export in progress stays so a while); the event is
    set at the first."""
    from tether.storages.local import LocalStorage

    slow_write = LocalStorage.write
    started = threading.Event()

    def write(self: LocalStorage, key: str, data: bytes, **kw: Any) -> None:
        started.set()
        time.sleep(0.03)
        slow_write(self, key, data, **kw)

    monkeypatch.setattr(LocalStorage, "write", write)
    return started


def test_target_storage_crud_and_options(api: Api) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 1)
    folder = api.folder()
    made = target(admin, local_body(done.project_id, folder, title="out"))
    assert (made["role"], made["project_id"], made["dataset_id"]) == (
        "target",
        done.project_id,
        None,
    )
    assert (made["can_delete_objects"], made["auto_export"], made["title"]) == (False, True, "out")
    assert made["check"]["ok"] is True and made["check"]["errors"] == []
    assert list(folder.iterdir()) == [], "the check's probe object was deleted"

    listed = admin.get("/storages", params={"project_id": done.project_id}).json()["items"]
    assert [s["id"] for s in listed] == [made["id"]]
    ds = admin.dataset()
    assert admin.get("/storages", params={"dataset_id": ds["id"]}).json()["items"] == []

    # a source's options are refused on a target, and a target's on a source
    for option in ({"regex_filter": "x"}, {"sync_every_minutes": 5}, {"use_signed_urls": False}):
        r = admin.post("/storages", json=local_body(done.project_id, folder, **option))
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "option_of_other_role", error
        assert "source storages only" in error["message"], error
    r = admin.post(
        "/storages",
        json={"type": "local", "dataset_id": ds["id"], "path": str(folder), "auto_export": True},
    )
    assert r.json()["error"]["code"] == "option_of_other_role", r.text
    r = admin.post(
        "/storages",
        json={**local_body(done.project_id, folder), "dataset_id": ds["id"]},
    )
    assert r.status_code == 422 and "not both" in r.json()["error"]["message"], r.text
    r = admin.post("/storages", json={**local_body(done.project_id, folder), "role": "source"})
    assert r.status_code == 422 and "dataset_id" in r.json()["error"]["message"], r.text

    # change: options of a target only; turning deletes on checks again
    r = admin.patch(f"/storages/{made['id']}", json={"can_delete_objects": True, "title": "t2"})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["can_delete_objects"], changed["title"]) == (True, "t2")
    assert changed["check"]["ok"] is True
    r = admin.patch(f"/storages/{made['id']}", json={"remove_missing": True})
    assert r.json()["error"]["code"] == "option_of_other_role", r.text

    # admins only; another organization sees nothing of it
    member = api.tenant(role="member", org=_org_name(api, admin.org_id))
    r = member.post("/storages", json=local_body(done.project_id, folder))
    assert r.status_code == 403, r.text
    assert member.post(f"/storages/{made['id']}/validate").json()["ok"] is True
    other = api.tenant()
    assert other.post("/storages", json=local_body(done.project_id, folder)).status_code == 404
    assert other.get(f"/storages/{made['id']}").status_code == 404
    assert other.get("/storages", params={"project_id": done.project_id}).status_code == 404

    assert admin.delete(f"/storages/{made['id']}").status_code == 204
    assert admin.get(f"/storages/{made['id']}").status_code == 404


def _org_name(api: Api, org_id: int) -> str:
    from tether import accounts

    with api.engine.connect() as conn:
        return str(accounts.get_org(conn, org_id)["name"])


def test_a_target_needs_a_project_of_the_organization(api: Api) -> None:
    admin = api.tenant()
    r = admin.post("/storages", json={"type": "local", "role": "target", "path": "/x"})
    assert r.status_code == 422 and "project_id" in r.json()["error"]["message"], r.text
    r = admin.post("/storages", json=local_body(2_000_000_000, api.folder()))
    assert r.status_code == 404, r.text


def test_target_check_of_a_folder_outside_the_root_saves_nothing(api: Api) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 1)
    r = admin.post("/storages", json=local_body(done.project_id, Path("/etc")))
    assert r.status_code == 422, r.text
    assert "document root" in r.json()["error"]["message"]
    assert admin.get("/storages", params={"project_id": done.project_id}).json()["items"] == []


def test_sdk_and_cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from tether.cli import app as cli_app
    from tether.cli import common

    admin = api.tenant()
    done = labeled(admin, api.engine, 3)
    sdk = Client("http://testserver", api_key=admin.key, transport=AppTransport(api.client))
    project = sdk.get_project(done.project_id)
    folder = api.folder()
    storage = project.add_target_storage("local", path=str(folder), can_delete_objects=True)
    assert (storage.role, storage.project_id, storage.can_delete_objects) == (
        "target",
        project.id,
        True,
    )
    assert [s.id for s in project.storages()] == [storage.id]
    job = storage.sync().wait_till_done(timeout=30)
    assert job.kind == "export" and job.status == "completed", job
    assert job.counts.to_dict() == {"written": 3, "unchanged": 0, "deleted": 0, "failed": 0}
    assert sorted(files(folder)) == sorted(str(i) for i in done.annotations)

    monkeypatch.setenv("TETHER_API_KEY", admin.key)
    monkeypatch.setattr(
        common,
        "Client",
        lambda: Client("http://testserver", api_key=admin.key, transport=AppTransport(api.client)),
    )
    second = api.folder()
    run = CliRunner().invoke(
        cli_app,
        ["storage", "add", "local", "--project", project.name, "--path", str(second),
         "--can-delete-objects", "--no-auto-export", "--title", "cli"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    made = orjson.loads(run.stdout[run.stdout.index("{") :])
    assert (made["role"], made["can_delete_objects"], made["auto_export"]) == (
        "target",
        True,
        False,
    )
    run = CliRunner().invoke(cli_app, ["storage", "add", "local", "--path", str(second)])
    assert run.exit_code == 1 and "--dataset" in run.output and "--project" in run.output
    run = CliRunner().invoke(cli_app, ["storage", "list", "--project", project.name])
    assert run.exit_code == 0 and "target" in run.output, run.output
    run = CliRunner().invoke(cli_app, ["storage", "check", str(made["id"])])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(cli_app, ["storage", "sync", str(made["id"])])
    assert run.exit_code == 0, run.output
    assert "written 3" in run.output and "unchanged 0" in run.output, run.output
    assert sorted(files(second)) == sorted(str(i) for i in done.annotations)


# --- what an export writes ---------------------------------------------------------------


def test_the_object_is_what_label_studio_writes(api: Api) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 2)
    skipped = done.annotate(done.rows[1], result=[], was_cancelled=True, lead_time=None)
    folder = api.folder()
    storage = target(admin, local_body(done.project_id, folder))
    job = export(admin, storage["id"])
    assert job["status"] == "completed", job
    assert counts(job) == {"written": 3, "unchanged": 0, "deleted": 0, "failed": 0}
    assert job["project_id"] == done.project_id and job["storage_id"] == storage["id"]
    written = files(folder)
    assert sorted(written) == sorted(str(i) for i in done.annotations)  # no extension

    first = written[str(done.annotations[0])]
    with api.engine.connect() as conn:
        task = conn.execute(
            select(tasks).where(
                tasks.c.project_id == done.project_id, tasks.c.data_row_id == done.rows[0]
            )
        ).one()
    assert set(first) == {
        "id", "result", "completed_by", "was_cancelled", "ground_truth", "lead_time",
        "created_at", "updated_at", "draft_created_at", "project", "updated_by",
        "parent_prediction", "parent_annotation", "task",
    }  # fmt: skip
    assert first["id"] == done.annotations[0]
    assert first["result"] == [REGION]
    assert first["completed_by"] == {
        "id": admin.user_id,
        "email": admin.email,
        "first_name": "",
        "last_name": "",
    }
    assert (first["was_cancelled"], first["ground_truth"], first["lead_time"]) == (
        False,
        False,
        12.5,
    )
    for stamp in ("created_at", "updated_at"):
        assert first[stamp].endswith("Z") and len(first[stamp]) == len(
            "2026-12-01T07:42:23.324500Z"
        )
    assert first["draft_created_at"] is None
    assert (first["project"], first["updated_by"]) == (done.project_id, admin.user_id)
    assert (first["parent_prediction"], first["parent_annotation"]) == (None, None)
    assert first["task"] == {
        "id": done.rows[0],
        "data": {"image": "s3://bucket/img/0.jpg"},  # the stored URI, not a resolved URL
        "meta": {},
        "created_at": task.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "updated_at": task.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "is_labeled": True,
        "total_annotations": 1,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "project": done.project_id,
    }
    skip = written[str(skipped)]
    assert (skip["was_cancelled"], skip["result"], skip["lead_time"]) == (True, [], None)
    assert skip["task"]["cancelled_annotations"] == 1 and skip["task"]["id"] == done.rows[1]


def test_only_new_and_changed_annotations_are_written(api: Api) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 12)
    folder = api.folder()
    storage = target(admin, local_body(done.project_id, folder))
    assert counts(export(admin, storage["id"]))["written"] == 12
    inodes = {p.name: p.stat().st_ino for p in folder.iterdir()}

    again = export(admin, storage["id"])
    assert counts(again) == {"written": 0, "unchanged": 12, "deleted": 0, "failed": 0}
    assert again["progress"] == {"done": 12, "total": 12}
    assert {p.name: p.stat().st_ino for p in folder.iterdir()} == inodes, "nothing rewritten"

    changed = [done.annotations[2], done.annotations[7]]
    done.edit(*changed)
    fresh = done.annotate(done.rows[0])
    job = export(admin, storage["id"])
    assert counts(job) == {"written": 3, "unchanged": 10, "deleted": 0, "failed": 0}
    now = {p.name: p.stat().st_ino for p in folder.iterdir()}
    rewritten = {name for name, ino in now.items() if inodes.get(name) != ino}
    assert rewritten == {str(i) for i in [*changed, fresh]}
    assert files(folder)[str(changed[0])]["result"][0]["id"] == "edited"
    assert done.links(storage["id"]) == done.versions()


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the annotations exports read from now on (the real reads, recorded)."""
    read: list[int] = []
    rows_above = target_export._rows_above

    def recorded(*args: Any, **kwargs: Any) -> list[Any]:
        rows = rows_above(*args, **kwargs)
        read.extend(int(row.id) for row in rows)
        return rows

    monkeypatch.setattr(target_export, "_rows_above", recorded)
    return read


def _export_seq(api: Api, storage_id: int) -> int:
    with api.engine.connect() as conn:
        found = conn.execute(select(storages.c.export_seq).where(storages.c.id == storage_id))
        return int(found.scalar_one())


def test_a_re_export_reads_only_what_was_saved_since_the_last(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 30)
    folder = api.folder()
    storage = target(admin, local_body(done.project_id, folder, can_delete_objects=True))
    read = _reads(monkeypatch)
    export(admin, storage["id"])
    assert sorted(read) == sorted(done.annotations), "the first export reads them all"
    with api.engine.connect() as conn:
        newest = conn.execute(
            select(annotation_rows.c.seq).where(annotation_rows.c.project_id == done.project_id)
        ).scalars()
        assert _export_seq(api, storage["id"]) == max(newest)

    read.clear()
    assert counts(export(admin, storage["id"]))["unchanged"] == 30
    assert read == [], "nothing saved since: nothing read"

    # saved since: edited (in an order other than their ids), added, deleted
    edited = [done.annotations[20], done.annotations[3], done.annotations[11]]
    done.edit(*edited)
    fresh = done.annotate(done.rows[5])
    gone = done.annotations[7]
    done.remove(gone)
    read.clear()
    job = export(admin, storage["id"])
    assert read == [*edited, fresh], "in the order they were saved"
    assert counts(job) == {"written": 4, "unchanged": 26, "deleted": 1, "failed": 0}
    assert job["progress"]["done"] == 30 + 1  # 30 annotations compared, 1 stale link
    assert str(gone) not in files(folder)
    assert done.links(storage["id"]) == done.versions()


def test_a_failed_write_holds_the_export_seq_below_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 6)
    folder = api.folder()
    storage = target(admin, local_body(done.project_id, folder))
    export(admin, storage["id"])
    done.edit(done.annotations[1], done.annotations[4])
    blocked = done.annotations[4]
    (folder / str(blocked)).unlink()
    (folder / str(blocked)).mkdir()  # it cannot be written
    done.edit(done.annotations[2])
    read = _reads(monkeypatch)
    job = export(admin, storage["id"])
    assert counts(job) == {"written": 2, "unchanged": 3, "deleted": 0, "failed": 1}
    with api.engine.connect() as conn:
        seq_of = dict(
            conn.execute(
                select(annotation_rows.c.id, annotation_rows.c.seq).where(
                    annotation_rows.c.id.in_(done.annotations)
                )
            ).all()
        )
    assert _export_seq(api, storage["id"]) == seq_of[blocked] - 1
    (folder / str(blocked)).rmdir()
    read.clear()
    job = export(admin, storage["id"])
    assert read == [blocked, done.annotations[2]], "from the failed one on"
    assert counts(job) == {"written": 1, "unchanged": 5, "deleted": 0, "failed": 0}
    assert done.links(storage["id"]) == done.versions()
    assert _export_seq(api, storage["id"]) == max(seq_of.values())


def test_a_target_moved_elsewhere_gets_everything_again(api: Api) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 4)
    storage = target(admin, local_body(done.project_id, api.folder()))
    export(admin, storage["id"])
    elsewhere = api.folder()
    r = admin.patch(f"/storages/{storage['id']}", json={"path": str(elsewhere)})
    assert r.status_code == 200 and r.json()["check"]["ok"], r.text
    job = export(admin, storage["id"])
    assert counts(job) == {"written": 4, "unchanged": 0, "deleted": 0, "failed": 0}
    assert sorted(files(elsewhere)) == sorted(str(i) for i in done.annotations)


@pytest.mark.parametrize("can_delete", [True, False])
def test_deleted_annotations(api: Api, can_delete: bool) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 5)
    folder = api.folder()
    storage = target(admin, local_body(done.project_id, folder, can_delete_objects=can_delete))
    export(admin, storage["id"])
    gone = done.annotations[1:3]
    done.remove(*gone)
    job = export(admin, storage["id"])
    left = {str(i) for i in done.annotations if i not in gone}
    if can_delete:
        assert counts(job) == {"written": 0, "unchanged": 3, "deleted": 2, "failed": 0}
        assert set(files(folder)) == left
        assert set(done.links(storage["id"])) == {int(i) for i in left}
    else:
        assert counts(job) == {"written": 0, "unchanged": 3, "deleted": 0, "failed": 0}
        assert set(files(folder)) == left | {str(i) for i in gone}, "objects stay"


def test_a_failed_write_is_an_error_naming_the_annotation_and_is_retried(api: Api) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 3)
    folder = api.folder()
    storage = target(admin, local_body(done.project_id, folder))
    blocked = done.annotations[1]
    (folder / str(blocked)).mkdir()  # a folder where the object goes: it cannot be written
    job = export(admin, storage["id"])
    assert job["status"] == "completed_with_errors", job
    assert counts(job) == {"written": 2, "unchanged": 0, "deleted": 0, "failed": 1}
    [error] = admin.errors(job["id"])
    assert error["details"]["annotation_id"] == blocked and error["item_key"] == str(blocked)
    (folder / str(blocked)).rmdir()
    assert counts(export(admin, storage["id"])) == {
        "written": 1,
        "unchanged": 2,
        "deleted": 0,
        "failed": 0,
    }


# --- auto export and concurrent exports --------------------------------------------------


def test_auto_exports_are_queued_once_per_target(api: Api) -> None:
    admin = api.tenant()
    done = labeled(admin, api.engine, 2)
    auto = target(admin, local_body(done.project_id, api.folder()))
    target(admin, local_body(done.project_id, api.folder(), auto_export=False))
    other = labeled(admin, api.engine, 1)
    target(admin, local_body(other.project_id, api.folder()))

    with api.engine.begin() as conn:
        first = queue_auto_exports(conn, admin.org_id, done.project_id)
    assert len(first) == 1
    with api.engine.begin() as conn:  # a save while it is queued adds nothing
        assert queue_auto_exports(conn, admin.org_id, done.project_id) == []
    with api.engine.connect() as conn:
        job = get_job(conn, admin.org_id, first[0])
    assert (job["kind"], job["status"], job["storage_id"], job["project_id"]) == (
        "export",
        "queued",
        auto["id"],
        done.project_id,
    )
    # the API's sync of that storage finds the queued one (200), not a second one
    r = admin.post(f"/storages/{auto['id']}/sync")
    assert r.status_code == 200 and r.json()["id"] == first[0], r.text
    # once it runs, a save queues the next
    with api.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == first[0]).values(status="running"))
    with api.engine.begin() as conn:
        second = queue_auto_exports(conn, admin.org_id, done.project_id)
    assert len(second) == 1 and second != first
    with api.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == first[0]).values(status="completed"))
    stranger = api.tenant()
    with api.engine.begin() as conn:
        assert queue_auto_exports(conn, admin.org_id, other.project_id) != []
        assert queue_auto_exports(conn, stranger.org_id, done.project_id) == []


def test_two_exports_of_one_storage_stay_exact(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second export (queued by a save while the first runs) waits for the first, then
    writes exactly what changed meanwhile."""
    admin = api.tenant()
    done = labeled(admin, api.engine, 40)
    folder = api.folder()
    storage = target(admin, local_body(done.project_id, folder, auto_export=False))
    settings = api.app.state.settings
    started = slowed_local_writes(monkeypatch)
    with api.engine.begin() as conn:
        from tether.projects.targets import start_export

        first, _ = start_export(conn, admin.org_id, storage["id"])
    runner = threading.Thread(
        target=target_export.run_export,
        args=(api.engine, settings, first["id"]),
        kwargs={"batch": 5},
    )
    runner.start()
    assert started.wait(10)
    done.edit(done.annotations[0], done.annotations[-1])
    with api.engine.begin() as conn:
        second, created = start_export(conn, admin.org_id, storage["id"])
    assert created
    target_export.run_export(api.engine, settings, second["id"], batch=5)
    runner.join(30)
    with api.engine.connect() as conn:
        one, two = (get_job(conn, admin.org_id, j["id"]) for j in (first, second))
    assert one["status"] == two["status"] == "completed", (one, two)
    assert two["details"]["waited_for"] == [first["id"]], two  # it wrote after the first
    # The last annotation was saved again before the first export read it: it is the
    # second's (saved after the first began). The first one the first export had written
    # already, so the second writes it again.
    assert counts(one) == {"written": 39, "unchanged": 0, "deleted": 0, "failed": 0}
    assert counts(two) == {"written": 2, "unchanged": 38, "deleted": 0, "failed": 0}
    edited_again = {done.annotations[0], done.annotations[-1]}
    assert done.links(storage["id"]) == done.versions()
    for annotation_id in edited_again:
        assert files(folder)[str(annotation_id)]["result"][0]["id"] == "edited"


def test_a_storage_changed_during_an_export_stops_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its new place holds none of what the export wrote (``export_seq`` went to 0): the
    export stops at its next commit, and the next one writes everything there."""
    admin = api.tenant()
    done = labeled(admin, api.engine, 20)
    storage = target(admin, local_body(done.project_id, api.folder(), auto_export=False))
    started = slowed_local_writes(monkeypatch)
    with api.engine.begin() as conn:
        from tether.projects.targets import start_export

        first, _ = start_export(conn, admin.org_id, storage["id"])
    runner = threading.Thread(
        target=target_export.run_export,
        args=(api.engine, api.app.state.settings, first["id"]),
        kwargs={"batch": 5},
    )
    runner.start()
    assert started.wait(10)
    elsewhere = api.folder()
    r = admin.patch(f"/storages/{storage['id']}", json={"path": str(elsewhere)})
    assert r.status_code == 200, r.text
    runner.join(30)
    with api.engine.connect() as conn:
        stopped = get_job(conn, admin.org_id, first["id"])
    assert stopped["status"] == "failed" and "changed" in stopped["message"], stopped
    assert counts(stopped)["written"] < 20
    job = export(admin, storage["id"])
    assert counts(job) == {"written": 20, "unchanged": 0, "deleted": 0, "failed": 0}
    assert sorted(files(elsewhere)) == sorted(str(i) for i in done.annotations)
