"""Roles through the API: every admin-only operation is 403 ``forbidden`` for a member (and
changes nothing) and works for an admin; members keep everything else."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from tests.conftest import Tenant, make_tenant
from tether import accounts
from tether.db.engine import foreign_keys_unchecked, make_engine
from tether.db.migrate import alembic_config, upgrade
from tether.errors import Conflict


@dataclass
class Org:
    """An organization with an admin, a member, and a third user (a member) with a key."""

    admin: Tenant
    member: Tenant
    other: Tenant
    other_key_id: int
    dataset: dict[str, Any]
    field: str


@pytest.fixture
def org(engine: Engine, tenant: Tenant, member: Tenant) -> Org:
    with engine.connect() as conn:
        name = accounts.get_org(conn, tenant.org_id)["name"]
    other = make_tenant(engine, tenant.http, org=name, role="member")
    keys = other.get("/api-keys").json()["items"]
    field = f"f-{uuid.uuid4().hex[:6]}"
    r = tenant.post("/metadata-schema", json={"name": field, "kind": "string"})
    assert r.status_code == 201, r.text
    return Org(tenant, member, other, keys[0]["id"], tenant.dataset(), field)


@dataclass
class Case:
    name: str
    call: Callable[[Tenant, Org], Any]
    admin_status: int
    unchanged: Callable[[Org], None] | None = None  # what a refused call must have left


def _role_of(o: Org, user_id: int) -> str:
    users = o.admin.get("/users").json()["items"]
    return str(next(u["role"] for u in users if u["id"] == user_id))


def _other_keys_active(o: Org) -> None:
    assert o.other.get("/api-keys").json()["items"][0]["revoked_at"] is None
    assert o.other.get("/datasets").status_code == 200


NEW_NAME = "renamed-field"
ADMIN_ONLY = [
    Case(
        "create a metadata field",
        lambda t, o: t.post("/metadata-schema", json={"name": "weather", "kind": "string"}),
        201,  # an admin after the refused member: no 409, so the member created nothing
    ),
    Case(
        "rename a metadata field",
        lambda t, o: t.patch(f"/metadata-schema/{o.field}", json={"name": o.field + NEW_NAME}),
        200,  # the admin finds the field by its old name: the member renamed nothing
    ),
    Case(
        "add enum options",
        lambda t, o: t.patch("/metadata-schema/split", json={"add_options": ["x"]}),
        409,  # reserved: the admin gets past the role check to the field's own rule
    ),
    Case("delete a metadata field", lambda t, o: t.delete(f"/metadata-schema/{o.field}"), 204),
    Case("delete a dataset", lambda t, o: t.delete(f"/datasets/{o.dataset['id']}"), 202),
    Case("list users", lambda t, o: t.get("/users"), 200),
    Case(
        "add a user",
        lambda t, o: t.post("/users", json={"email": f"new-{o.field}@example.com"}),
        201,
    ),
    Case(
        "change a role",
        lambda t, o: t.patch(f"/users/{o.other.user_id}", json={"role": "admin"}),
        200,
        lambda o: _role_of(o, o.other.user_id) == "member" or pytest.fail("role changed"),
    ),
    Case(
        "set a password",
        lambda t, o: t.patch(f"/users/{o.other.user_id}", json={"password": "long enough"}),
        200,
        lambda o: (
            next(u for u in o.admin.get("/users").json()["items"] if u["id"] == o.other.user_id)[
                "can_sign_in"
            ]
            is False
            or pytest.fail("password set")
        ),
    ),
    Case(
        "remove a user",
        lambda t, o: t.delete(f"/users/{o.other.user_id}"),
        204,
        _other_keys_active,
    ),
    Case("list the organization's keys", lambda t, o: t.get("/api-keys?all=true"), 200),
    Case(
        "create a key for another user",
        lambda t, o: t.post("/api-keys", json={"name": "ci", "user_id": o.other.user_id}),
        201,
        lambda o: len(o.other.get("/api-keys").json()["items"]) == 1 or pytest.fail("made"),
    ),
    Case(
        "revoke another user's key",
        lambda t, o: t.delete(f"/api-keys/{o.other_key_id}"),
        204,
        _other_keys_active,
    ),
]


@pytest.mark.parametrize("case", ADMIN_ONLY, ids=[c.name for c in ADMIN_ONLY])
def test_admin_only_operations(org: Org, case: Case) -> None:
    refused = case.call(org.member, org)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "forbidden"
    assert error["message"].startswith("only an organization admin can")
    assert error["details"] == {"role": "member", "required_role": "admin"}
    if case.unchanged:
        case.unchanged(org)
    done = case.call(org.admin, org)
    assert done.status_code == case.admin_status, done.text


def test_a_refused_dataset_delete_keeps_every_row(org: Org) -> None:
    job = org.member.import_rows(org.dataset["id"], '[{"row_data": "s3://b/1.jpg"}]')
    assert job["status"] in ("completed", "queued", "running"), job
    assert org.member.delete(f"/datasets/{org.dataset['id']}").status_code == 403
    got = org.member.get(f"/datasets/{org.dataset['id']}", params={"with_count": True})
    assert got.json()["row_count"] == 1


MEMBER_MAY = [
    ("list datasets", lambda t, o: t.get("/datasets"), 200),
    ("create a dataset", lambda t, o: t.post("/datasets", json={"name": f"m-{o.field}"}), 201),
    (
        "rename a dataset",
        lambda t, o: t.patch(f"/datasets/{o.dataset['id']}", json={"description": "x"}),
        200,
    ),
    (
        "import rows",
        lambda t, o: t.post(
            f"/datasets/{o.dataset['id']}/data-rows", content='[{"row_data": "s3://b/x.jpg"}]'
        ),
        202,
    ),
    ("read the schema", lambda t, o: t.get("/metadata-schema"), 200),
    ("read a field", lambda t, o: t.get(f"/metadata-schema/{o.field}"), 200),
    ("list rows", lambda t, o: t.get("/data-rows"), 200),
    ("list jobs", lambda t, o: t.get("/jobs"), 200),
    ("list own keys", lambda t, o: t.get("/api-keys"), 200),
    ("create an own key", lambda t, o: t.post("/api-keys", json={"name": "laptop"}), 201),
    ("see the organization", lambda t, o: t.get("/organization"), 200),
    ("see who is calling", lambda t, o: t.get("/session"), 200),
]


@pytest.mark.parametrize(("name", "call", "status"), MEMBER_MAY, ids=[m[0] for m in MEMBER_MAY])
def test_members_keep_everything_else(org: Org, name: str, call: Any, status: int) -> None:
    r = call(org.member, org)
    assert r.status_code == status, (name, r.text)


def test_member_deletes_data_rows(org: Org) -> None:
    org.member.import_rows(org.dataset["id"], '[{"row_data": "s3://b/1.jpg", "global_key": "g"}]')
    row_id = org.member.get("/data-rows").json()["items"][0]["id"]
    assert org.member.delete(f"/data-rows/{row_id}").status_code in (200, 204)


def test_the_api_shows_roles(org: Org) -> None:
    assert org.member.get("/session").json()["user"]["role"] == "member"
    me = org.admin.get("/session").json()
    assert me["user"] == {"id": org.admin.user_id, "email": org.admin.email, "role": "admin"}
    assert me["auth"] == "api_key" and me["csrf_token"] is None
    assert me["organization"]["id"] == org.admin.org_id
    roles = {u["id"]: u["role"] for u in org.admin.get("/users").json()["items"]}
    assert roles == {
        org.admin.user_id: "admin",
        org.member.user_id: "member",
        org.other.user_id: "member",
    }


def test_a_new_role_applies_to_the_next_request(org: Org) -> None:
    assert org.member.delete(f"/metadata-schema/{org.field}").status_code == 403
    assert org.admin.patch(f"/users/{org.member.user_id}", json={"role": "admin"}).is_success
    assert org.member.delete(f"/metadata-schema/{org.field}").status_code == 204
    assert org.admin.patch(f"/users/{org.member.user_id}", json={"role": "member"}).is_success
    assert org.member.delete(f"/datasets/{org.dataset['id']}").status_code == 403


def test_an_organization_keeps_an_admin(org: Org) -> None:
    me = f"/users/{org.admin.user_id}"
    for refused in (org.admin.patch(me, json={"role": "member"}), org.admin.delete(me)):
        assert refused.status_code == 409, refused.text
        assert "at least one admin" in refused.json()["error"]["message"]
    assert org.admin.get("/session").json()["user"]["role"] == "admin"
    assert org.admin.patch(f"/users/{org.member.user_id}", json={"role": "admin"}).is_success
    assert org.admin.patch(me, json={"role": "member"}).status_code == 200  # one is left
    # the former admin is a member now; the new one cannot step down
    assert org.admin.get("/users").status_code == 403
    again = org.member.patch(f"/users/{org.member.user_id}", json={"role": "member"})
    assert again.status_code == 409


def test_removing_a_user_takes_their_keys(org: Org) -> None:
    assert org.admin.delete(f"/users/{org.other.user_id}").status_code == 204
    assert org.other.get("/datasets").status_code == 401
    assert org.admin.delete(f"/users/{org.other.user_id}").status_code == 404


def test_organizations_stay_apart(org: Org, other_tenant: Tenant) -> None:
    """An admin of another organization finds nothing of this one."""
    assert (
        other_tenant.patch(f"/users/{org.member.user_id}", json={"role": "admin"}).status_code
        == 404
    )
    assert other_tenant.delete(f"/users/{org.member.user_id}").status_code == 404
    assert other_tenant.delete(f"/api-keys/{org.other_key_id}").status_code == 404
    made = other_tenant.post("/api-keys", json={"user_id": org.member.user_id})
    assert made.status_code == 404
    emails = {u["email"] for u in other_tenant.get("/users").json()["items"]}
    assert emails == {other_tenant.email}
    all_keys = other_tenant.get("/api-keys", params={"all": True}).json()["items"]
    assert {k["user_id"] for k in all_keys} == {other_tenant.user_id}
    _other_keys_active(org)


BAD_USERS = [
    ({"email": "x@example.com", "role": "owner"}, 422),
    ({"email": "not-an-email"}, 422),
    ({"email": "x@example.com", "password": "short"}, 422),
    ({"email": "x@example.com", "password": "x" * 1025}, 422),
    ({"email": "x@example.com", "colour": "red"}, 422),
    ({"role": "admin"}, 422),
]


@pytest.mark.parametrize(("body", "status"), BAD_USERS)
def test_bad_user_input_is_refused(org: Org, body: dict[str, Any], status: int) -> None:
    r = org.admin.post("/users", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == "invalid"


def test_a_taken_email_is_409(org: Org) -> None:
    r = org.admin.post("/users", json={"email": org.member.email.upper()})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("user_id", ["0", "-1", "abc", str(2**31), str(2**63)])
def test_bad_user_ids_are_422_not_500(org: Org, user_id: str) -> None:
    for r in (
        org.admin.patch(f"/users/{user_id}", json={"role": "admin"}),
        org.admin.delete(f"/users/{user_id}"),
        org.admin.delete(f"/api-keys/{user_id}"),
    ):
        assert r.status_code == 422, r.text


def test_an_invited_user_with_a_password_can_sign_in(org: Org, app: Any) -> None:
    from fastapi.testclient import TestClient

    email = f"invited-{uuid.uuid4().hex[:6]}@example.com"
    made = org.admin.post(
        "/users", json={"email": email, "role": "member", "password": "pw-1234-x"}
    )
    assert made.status_code == 201 and made.json()["can_sign_in"] is True
    assert made.json()["role"] == "member"
    browser = TestClient(app)
    r = browser.post("/api/v1/session", json={"email": email, "password": "pw-1234-x"})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["role"] == "member"


# --- the CLI's --admin ---------------------------------------------------------------


def _cli(data_dir: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    tether = Path(sys.executable).with_name("tether")
    env = {"PATH": os.environ.get("PATH", ""), "TETHER_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [str(tether), *args], env=env, input=input, capture_output=True, text=True, timeout=60
    )


def test_cli_admin_flag_makes_an_admin(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from tether.api.app import create_app
    from tether.config import Settings

    assert _cli(tmp_path, "migrate").returncode == 0  # admin commands create no database
    for email, flags in (("boss@example.com", ["--admin"]), ("dev@example.com", [])):
        made = _cli(
            tmp_path,
            "users",
            "create",
            email,
            "--org",
            "acme",
            *flags,
            "--password-stdin",
            input="pw\n",
        )
        assert made.returncode == 0, made.stderr
    keys = {}
    for email in ("boss@example.com", "dev@example.com"):
        out = _cli(tmp_path, "keys", "create", email)
        assert out.returncode == 0, out.stderr
        keys[email] = out.stdout.strip()
    app = create_app(Settings(data_dir=tmp_path, queue_url="immediate", embedded_worker=False))
    http = TestClient(app)

    def call(email: str, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {keys[email]}"}
        return http.request(method, "/api/v1" + path, headers=headers, **kw)

    assert call("boss@example.com", "GET", "/session").json()["user"]["role"] == "admin"
    assert call("dev@example.com", "GET", "/session").json()["user"]["role"] == "member"
    body = {"name": "colour", "kind": "string"}
    assert call("dev@example.com", "POST", "/metadata-schema", json=body).status_code == 403
    assert call("boss@example.com", "POST", "/metadata-schema", json=body).status_code == 201
    app.state.engine.dispose()


# --- migration 0004_roles ------------------------------------------------------------


@pytest.fixture
def blank_engine(backend: str, tmp_path: Path, pg_url: str) -> Iterator[Engine]:
    """An engine on an empty database of the backend under test."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'blank.db'}")
        yield engine
        engine.dispose()
        return
    name = f"tether_roles_{uuid.uuid4().hex[:10]}"
    server = "postgresql+psycopg://" + pg_url.rsplit("/", 1)[0].split("://", 1)[1]
    admin = create_engine(server + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(f"{server}/{name}")
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_migration_turns_is_admin_into_roles_and_back(blank_engine: Engine) -> None:
    config = alembic_config(blank_engine.url.render_as_string(hide_password=False))
    with blank_engine.connect() as conn, foreign_keys_unchecked(conn), conn.begin():
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        execute = conn.exec_driver_sql
        execute("INSERT INTO organizations (id, name, created_at) VALUES (1, 'o', '2026-01-01')")
        execute(
            "INSERT INTO users (id, org_id, email, is_admin, created_at) VALUES "
            "(1, 1, 'a@x.io', true, '2026-01-01'), (2, 1, 'm@x.io', false, '2026-01-01')"
        )
        execute(
            "INSERT INTO api_keys (id, user_id, org_id, name, key_hash, hint, created_at) "
            "VALUES (1, 1, 1, 'k', 'h1', 'tth_', '2026-01-01'), "
            "(2, 2, 1, 'k', 'h2', 'tth_', '2026-01-01')"
        )
    upgrade(blank_engine)
    with blank_engine.begin() as conn:
        rows = conn.exec_driver_sql("SELECT id, role FROM users ORDER BY id").all()
        assert [tuple(r) for r in rows] == [(1, "admin"), (2, "member")]
        assert conn.exec_driver_sql("SELECT count(*) FROM api_keys").scalar() == 2  # no cascade
        assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar() == 0
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.exec_driver_sql("UPDATE users SET role = 'owner' WHERE id = 2")
    with blank_engine.connect() as conn, foreign_keys_unchecked(conn), conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
        rows = conn.exec_driver_sql("SELECT id, is_admin FROM users ORDER BY id").all()
        assert [(r[0], bool(r[1])) for r in rows] == [(1, True), (2, False)]
        assert conn.exec_driver_sql("SELECT count(*) FROM api_keys").scalar() == 2
        tables = {
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                if conn.dialect.name == "sqlite"
                else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
        assert "sessions" not in tables


# --- two admins demoting each other at once ------------------------------------------


def test_two_admins_demoting_each_other_at_once_leave_one(engine: Engine, tenant: Tenant) -> None:
    """Each thread's own transaction: exactly one demotion wins, every round."""
    with engine.connect() as conn:
        org_name = accounts.get_org(conn, tenant.org_id)["name"]
    for _round in range(4):
        a = make_tenant(engine, tenant.http, org=org_name, role="admin")
        b = make_tenant(engine, tenant.http, org=org_name, role="admin")
        with engine.begin() as conn:  # only a and b are admins now
            for user in (tenant.user_id, *_other_admins(conn, tenant.org_id, a, b)):
                conn.execute(text("UPDATE users SET role = 'member' WHERE id = :id"), {"id": user})
        outcomes = _race(engine, [(a, b.user_id), (b, a.user_id)])
        assert sorted(outcomes) == ["Conflict", "ok"], outcomes
        with engine.connect() as conn:
            admins = conn.execute(
                text("SELECT count(*) FROM users WHERE org_id = :o AND role = 'admin'"),
                {"o": tenant.org_id},
            ).scalar()
        assert admins == 1


def _other_admins(conn: Any, org_id: int, *keep: Tenant) -> list[int]:
    rows = conn.execute(
        text("SELECT id FROM users WHERE org_id = :o AND role = 'admin'"), {"o": org_id}
    )
    return [r[0] for r in rows if r[0] not in {t.user_id for t in keep}]


def _race(engine: Engine, moves: list[tuple[Tenant, int]]) -> list[str]:
    barrier = threading.Barrier(len(moves))
    outcomes: list[str] = []

    def demote(actor: Tenant, target: int) -> None:
        with engine.connect() as conn:
            caller = accounts.authenticate(conn, actor.key)
            conn.commit()
            barrier.wait()
            try:
                with conn.begin():
                    accounts.update_user(conn, caller, target, role="member")
                outcomes.append("ok")
            except Conflict:
                outcomes.append("Conflict")

    threads = [threading.Thread(target=demote, args=move) for move in moves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes
