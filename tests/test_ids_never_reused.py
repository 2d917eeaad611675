"""A saved id never names something else: after a delete, the next id of every table a user
addresses is past every id it handed out before, in any organization, on both databases.
Each case deletes the newest row (the one an id counter would hand out again) and creates
the next one in another organization."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.conftest import Tenant, make_tenant
from tether import accounts


def _unique() -> str:
    return uuid.uuid4().hex[:10]


def _org(engine: Engine, _tenant: Tenant) -> int:
    with engine.begin() as conn:
        accounts.create_user(conn, f"o-{_unique()}@example.com", f"org-{_unique()}", None)
        return int(conn.execute(text("SELECT max(id) FROM organizations")).scalar_one())


def _drop_org(engine: Engine, _tenant: Tenant, org_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE org_id = :i"), {"i": org_id})
        conn.execute(text("DELETE FROM organizations WHERE id = :i"), {"i": org_id})


def _user(engine: Engine, tenant: Tenant) -> int:
    org = _tenant_org_name(engine, tenant)
    with engine.begin() as conn:
        return accounts.create_user(conn, f"u-{_unique()}@example.com", org, None)


def _tenant_org_name(engine: Engine, tenant: Tenant) -> str:
    with engine.connect() as conn:
        query = text("SELECT name FROM organizations WHERE id = :i")
        return str(conn.execute(query, {"i": tenant.org_id}).scalar_one())


def _drop(table: str) -> Callable[[Engine, Tenant, int], None]:
    def drop(engine: Engine, _tenant: Tenant, row_id: int) -> None:
        with engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE id = :i"), {"i": row_id})

    return drop


def _api_key(engine: Engine, tenant: Tenant) -> int:
    with engine.begin() as conn:
        accounts.create_api_key(conn, tenant.email, "k")
        query = text("SELECT max(id) FROM api_keys WHERE user_id = :u")
        return int(conn.execute(query, {"u": tenant.user_id}).scalar_one())


def _dataset(_engine: Engine, tenant: Tenant) -> int:
    return int(tenant.dataset()["id"])


def _drop_dataset(_engine: Engine, tenant: Tenant, dataset_id: int) -> None:
    assert tenant.delete(f"/datasets/{dataset_id}").status_code == 202


def _data_row(_engine: Engine, tenant: Tenant) -> int:
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], b"s3://b/1.jpg\n")
    [row] = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    return int(row["id"])


def _drop_data_row(_engine: Engine, tenant: Tenant, row_id: int) -> None:
    assert tenant.delete(f"/data-rows/{row_id}").status_code == 204


def _field_key(engine: Engine, tenant: Tenant) -> int:
    name = f"f{_unique()}"
    r = tenant.post("/metadata-schema", json={"name": name, "kind": "string"})
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        query = text("SELECT key FROM metadata_fields WHERE id = :i")
        return int(conn.execute(query, {"i": r.json()["id"]}).scalar_one())


def _drop_field(engine: Engine, tenant: Tenant, key: int) -> None:
    with engine.connect() as conn:
        query = text("SELECT name FROM metadata_fields WHERE key = :k")
        name = conn.execute(query, {"k": key}).scalar_one()
    assert tenant.delete(f"/metadata-schema/{name}").status_code == 204


def _job_error(engine: Engine, tenant: Tenant) -> int:
    job = tenant.import_rows(tenant.dataset()["id"], b'{"row_data": ""}\n')
    [error] = tenant.errors(job["id"])
    assert error["code"] == "missing_row_data"
    with engine.connect() as conn:
        query = text("SELECT max(id) FROM job_errors WHERE job_id = :j")
        return int(conn.execute(query, {"j": job["id"]}).scalar_one())


CASES: dict[str, tuple[Callable[[Engine, Tenant], int], Callable[[Engine, Tenant, int], Any]]] = {
    "organizations": (_org, _drop_org),
    "users": (_user, _drop("users")),
    "api_keys": (_api_key, _drop("api_keys")),
    "datasets": (_dataset, _drop_dataset),
    "data_rows": (_data_row, _drop_data_row),
    "metadata_fields": (_field_key, _drop_field),
    "job_errors": (_job_error, _drop("job_errors")),
}


@pytest.mark.parametrize("table", CASES)
def test_an_id_is_never_handed_out_again(
    engine: Engine, http: Any, tenant: Tenant, table: str
) -> None:
    make, drop = CASES[table]
    first = make(engine, tenant)
    drop(engine, tenant, first)
    again = make(engine, tenant)
    assert again > first, f"{table}: id {again} after deleting {first}"
    drop(engine, tenant, again)
    other = make_tenant(engine, http)  # another organization
    assert make(engine, other) > again, table
