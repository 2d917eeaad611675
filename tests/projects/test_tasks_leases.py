"""``next-task``: an annotator's next task under a lease. The same annotator gets the task
they hold; two never get the same task, even asking at the same moment (threads, on both
databases); a lease that ran out lets another annotator have the task."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant, make_tenant
from tests.projects.conftest import new_project
from tests.projects.test_tasks import _name, add, images, rows_of
from tether import accounts
from tether.config import Settings
from tether.projects import labels, tasks


def project_of(tenant: Tenant, n: int) -> tuple[dict[str, Any], list[int]]:
    ds = tenant.dataset()
    rows = rows_of(tenant, images(n), ds)
    project = new_project(tenant, _name())
    add(tenant, project, dataset=ds["id"])
    return project, [r["id"] for r in rows]


def annotate(
    engine: Engine, tenant: Tenant, project_id: int, row_id: int, user_id: int, held: bool = True
) -> None:
    """What saving an annotation does: write it, then give up the lease (``held``: the user
    must hold it still)."""
    with engine.begin() as conn:
        labels.insert_annotations(
            conn,
            [
                {
                    "org_id": tenant.org_id,
                    "project_id": project_id,
                    "data_row_id": row_id,
                    "result": [],
                    "completed_by": user_id,
                }
            ],
        )
        assert labels.release_lease(conn, project_id, row_id, user_id) or not held


def next_id(who: Tenant, project: dict[str, Any]) -> int | None:
    r = who.get(f"/projects/{project['id']}/next-task")
    if r.status_code == 404:
        assert r.json()["error"]["code"] == "no_task", r.text
        return None
    assert r.status_code == 200, r.text
    task = r.json()
    assert task["lease_user_id"] is not None and task["lease_until"] is not None
    return int(task["data_row_id"])


def test_each_annotator_keeps_their_task_until_it_is_labeled(
    engine: Engine, tenant: Tenant, member: Tenant
) -> None:
    project, ids = project_of(tenant, 3)
    path = f"/projects/{project['id']}/next-task"
    first = tenant.get(path).json()
    assert first["data_row_id"] == ids[0] and first["lease_user_id"] == tenant.user_id
    assert first["status"] == "unlabeled" and first["data_row"]["id"] == ids[0]
    assert next_id(member, project) == ids[1]
    time.sleep(0.01)
    again = tenant.get(path).json()
    assert again["data_row_id"] == ids[0] and again["lease_until"] > first["lease_until"]
    shown = tenant.get(f"/projects/{project['id']}/tasks/{ids[1]}").json()
    assert shown["lease_user_id"] == member.user_id
    annotate(engine, tenant, project["id"], ids[0], tenant.user_id)
    assert next_id(tenant, project) == ids[2]
    assert next_id(member, project) == ids[1]
    annotate(engine, member, project["id"], ids[1], member.user_id)
    assert next_id(member, project) is None  # the last one is held by the other annotator
    annotate(engine, tenant, project["id"], ids[2], tenant.user_id)
    assert next_id(tenant, project) is None
    resolved = tenant.get(path, params={"resolve": "true"})
    assert resolved.status_code == 404


def test_a_lease_that_ran_out_goes_to_whoever_asks(
    tenant: Tenant, member: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, ids = project_of(tenant, 2)
    monkeypatch.setattr(settings, "task_lease_seconds", 0.3)
    assert next_id(tenant, project) == ids[0]
    assert next_id(member, project) == ids[1]
    time.sleep(0.4)
    shown = tenant.get(f"/projects/{project['id']}/tasks/{ids[0]}").json()
    assert shown["lease_user_id"] is None  # a lease that ran out shows as none
    assert next_id(member, project) == ids[1]  # theirs still (renewed)
    other = make_tenant_in(tenant)
    assert next_id(other, project) == ids[0]  # the first annotator's ran out
    assert next_id(tenant, project) is None


def make_tenant_in(tenant: Tenant, role: str = "member") -> Tenant:
    """Another user of ``tenant``'s organization."""
    engine = tenant.http.app.state.engine
    with engine.connect() as conn:
        org = accounts.get_org(conn, tenant.org_id)["name"]
    return make_tenant(engine, tenant.http, org=org, role=role)


def test_expiry_and_release_at_the_service(engine: Engine, tenant: Tenant) -> None:
    project, ids = project_of(tenant, 2)
    other = make_tenant_in(tenant)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        got = tasks.next_task(conn, tenant.org_id, project["id"], tenant.user_id, 60, now)
        assert got is not None and got["data_row_id"] == ids[0]
        later = now + timedelta(seconds=61)
        taken = tasks.next_task(conn, tenant.org_id, project["id"], other.user_id, 60, later)
        assert taken is not None and taken["data_row_id"] == ids[0]
        assert not labels.release_lease(conn, project["id"], ids[0], tenant.user_id)
        mine = tasks.next_task(conn, tenant.org_id, project["id"], tenant.user_id, 60, later)
        assert mine is not None and mine["data_row_id"] == ids[1]
        assert labels.release_lease(conn, project["id"], ids[1], tenant.user_id)
        back = tasks.next_task(conn, tenant.org_id, project["id"], tenant.user_id, 60, later)
        assert back is not None and back["data_row_id"] == ids[1]


def test_skipped_and_labeled_tasks_are_not_handed_out(engine: Engine, tenant: Tenant) -> None:
    project, ids = project_of(tenant, 3)
    base = {"org_id": tenant.org_id, "project_id": project["id"], "result": []}
    with engine.begin() as conn:
        labels.insert_annotations(
            conn,
            [
                {**base, "data_row_id": ids[0]},
                {**base, "data_row_id": ids[1], "was_cancelled": True},
            ],
        )
    assert next_id(tenant, project) == ids[2]


def test_two_annotators_never_get_the_same_task(engine: Engine, tenant: Tenant) -> None:
    """Two annotators, each with three threads asking and labeling as fast as they can: every
    task is handed out once."""
    project, ids = project_of(tenant, 40)
    people = [tenant, make_tenant_in(tenant)]
    handed: list[tuple[int, int]] = []
    failures: list[BaseException] = []
    start = threading.Barrier(6)

    def annotator(who: Tenant) -> None:
        try:
            start.wait()
            while True:
                with engine.begin() as conn:
                    task = tasks.next_task(conn, tenant.org_id, project["id"], who.user_id, 60)
                if task is None:
                    return
                handed.append((who.user_id, task["data_row_id"]))
                row = task["data_row_id"]
                annotate(engine, tenant, project["id"], row, who.user_id, held=False)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=annotator, args=(p,)) for p in people for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    # A thread of an annotator may be handed the task another thread of theirs holds (it is
    # theirs), never one the other annotator holds: each task went to one annotator.
    owners: dict[int, set[int]] = {}
    for user, row in handed:
        owners.setdefault(row, set()).add(user)
    assert sorted(owners) == ids
    assert all(len(users) == 1 for users in owners.values()), owners
    assert {u for users in owners.values() for u in users} == {p.user_id for p in people}


def test_annotators_asking_at_once_get_different_tasks(engine: Engine, tenant: Tenant) -> None:
    project, ids = project_of(tenant, 10)
    people = [tenant] + [make_tenant_in(tenant) for _ in range(7)]
    got: dict[int, int | None] = {}
    start = threading.Barrier(len(people))

    def ask(who: Tenant) -> None:
        start.wait()
        with engine.begin() as conn:
            task = tasks.next_task(conn, tenant.org_id, project["id"], who.user_id, 60)
        got[who.user_id] = None if task is None else task["data_row_id"]

    threads = [threading.Thread(target=ask, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    handed = list(got.values())
    assert len(handed) == len(people) and None not in handed
    assert Counter(handed).most_common(1)[0][1] == 1
    assert set(handed) <= set(ids)


def test_other_organizations_cannot_take_tasks(tenant: Tenant, engine: Engine) -> None:
    project, _ids = project_of(tenant, 1)
    stranger = make_tenant(engine, tenant.http)
    r = stranger.get(f"/projects/{project['id']}/next-task")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with engine.begin() as conn, pytest.raises(Exception, match="no project"):
        tasks.next_task(conn, stranger.org_id, project["id"], stranger.user_id, 60)


def test_held_tasks_are_passed_over_window_by_window(
    engine: Engine, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "WINDOW", 1)
    project, ids = project_of(tenant, 4)
    people = [tenant] + [make_tenant_in(tenant) for _ in range(3)]
    assert [next_id(p, project) for p in people] == ids
    assert next_id(make_tenant_in(tenant), project) is None
