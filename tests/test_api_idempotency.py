"""``Idempotency-Key`` on every route that creates or changes something: the same request
again gets the first answer and acts no more; the key with another request is 422
``idempotency_key_reused``; a request that failed keeps no key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, update

from tests.conftest import Tenant
from tether import idempotency
from tether.db.tables import idempotency_keys

# See test_api_data_rows.py: Result.tuples() in catalog/data_rows.py (pinned elsewhere).
pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")


def key() -> str:
    return uuid.uuid4().hex


def send(tenant: Tenant, method: str, path: str, idem: str | None, body: Any = None) -> Any:
    headers = {**tenant.headers, **({"Idempotency-Key": idem} if idem else {})}
    content = None if body is None else orjson.dumps(body)
    if content is not None:
        headers["Content-Type"] = "application/json"
    return tenant.http.request(method, "/api/v1" + path, headers=headers, content=content)


def rows(tenant: Tenant, n: int) -> tuple[int, list[dict[str, Any]]]:
    ds = tenant.dataset()
    tag = uuid.uuid4().hex[:8]
    body = b"".join(
        orjson.dumps({"row_data": f"s3://b/{tag}/{i}.jpg", "global_key": f"{tag}-{i}"}) + b"\n"
        for i in range(n)
    )
    tenant.import_rows(ds["id"], body)
    items = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    return int(ds["id"]), items


@dataclass
class Case:
    """A route, and how to make a request to it that a second run would answer differently."""

    name: str
    prepare: Callable[[Tenant], tuple[str, str, Any]]
    acts_twice_differently: bool = True  # without the key, a second run answers otherwise


def _create_dataset(t: Tenant) -> tuple[str, str, Any]:
    return "POST", "/datasets", {"name": f"ds-{key()[:8]}"}


def _create_field(t: Tenant) -> tuple[str, str, Any]:
    return "POST", "/metadata-schema", {"name": f"f{key()[:8]}", "kind": "string"}


def _patch_field(t: Tenant) -> tuple[str, str, Any]:
    field = t.post(
        "/metadata-schema", json={"name": f"f{key()[:8]}", "kind": "enum", "options": ["z"]}
    ).json()
    return "PATCH", f"/metadata-schema/{field['id']}", {"add_options": ["a"]}


def _delete_field(t: Tenant) -> tuple[str, str, Any]:
    field = t.post("/metadata-schema", json={"name": f"f{key()[:8]}", "kind": "string"}).json()
    return "DELETE", f"/metadata-schema/{field['id']}", None


def _patch_dataset(t: Tenant) -> tuple[str, str, Any]:
    return "PATCH", f"/datasets/{t.dataset()['id']}", {"description": "changed"}


def _delete_dataset(t: Tenant) -> tuple[str, str, Any]:
    return "DELETE", f"/datasets/{rows(t, 2)[0]}", None


def _delete_rows(t: Tenant) -> tuple[str, str, Any]:
    _, items = rows(t, 3)
    body = {"ids": [items[0]["id"]], "global_keys": [items[1]["global_key"]]}
    return "POST", "/data-rows/delete", body


def _delete_row(t: Tenant) -> tuple[str, str, Any]:
    return "DELETE", f"/data-rows/{rows(t, 1)[1][0]['id']}", None


def _patch_row(t: Tenant) -> tuple[str, str, Any]:
    return "PATCH", f"/data-rows/{rows(t, 1)[1][0]['id']}", {"external_id": "x"}


def _assign(t: Tenant) -> tuple[str, str, Any]:
    row = rows(t, 1)[1][0]
    return (
        "POST",
        "/data-rows/global-keys",
        {"assignments": [{"data_row_id": row["id"], "global_key": f"new-{key()}"}]},
    )


def _clear(t: Tenant) -> tuple[str, str, Any]:
    row = rows(t, 1)[1][0]
    return "POST", "/data-rows/global-keys/clear", {"global_keys": [row["global_key"]]}


CASES = [
    Case("create dataset", _create_dataset),
    Case("create field", _create_field),
    Case("patch field", _patch_field, acts_twice_differently=False),
    Case("delete field", _delete_field),
    Case("patch dataset", _patch_dataset),
    Case("delete dataset", _delete_dataset),
    Case("delete rows", _delete_rows),
    Case("delete row", _delete_row),
    Case("patch row", _patch_row),
    Case("assign global keys", _assign, acts_twice_differently=False),
    Case("clear global keys", _clear),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_repeat_gets_the_first_answer(tenant: Tenant, case: Case) -> None:
    method, path, body = case.prepare(tenant)
    idem = key()
    first = send(tenant, method, path, idem, body)
    assert first.is_success, first.text
    again = send(tenant, method, path, idem, body)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    # Without the key the same request acts again, and is answered differently (409, 404,
    # "not found" items, a new updated_at): the replay above did not just happen to match.
    if not case.acts_twice_differently:
        return
    time.sleep(0.002)
    fresh = send(tenant, method, path, None, body)
    assert (fresh.status_code, fresh.content) != (first.status_code, first.content)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_key_on_another_route_is_422(tenant: Tenant, case: Case) -> None:
    method, path, body = case.prepare(tenant)
    idem = key()
    assert send(tenant, method, path, idem, body).is_success
    r = send(tenant, "POST", "/datasets", idem, {"name": f"other-{key()[:8]}"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("path", "first", "then"),
    [
        ("/datasets", {"name": "a"}, {"name": "b"}),
        ("/datasets", {"name": "a"}, {"name": "a", "description": "d"}),
        ("/metadata-schema", {"name": "a", "kind": "string"}, {"name": "a", "kind": "number"}),
    ],
)
def test_the_key_with_another_body_is_422(
    tenant: Tenant, path: str, first: dict[str, Any], then: dict[str, Any]
) -> None:
    tag = key()[:8]
    first, then = {**first, "name": first["name"] + tag}, {**then, "name": then["name"] + tag}
    idem = key()
    assert send(tenant, "POST", path, idem, first).is_success
    r = send(tenant, "POST", path, idem, then)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "idempotency_key_reused"
    assert send(tenant, "POST", path, idem, first).is_success  # the first one still replays


def test_the_same_json_spelled_otherwise_is_the_same_request(tenant: Tenant) -> None:
    idem, name = key(), f"ds-{key()[:8]}"
    headers = {**tenant.headers, "Idempotency-Key": idem, "Content-Type": "application/json"}
    a = tenant.http.post(
        "/api/v1/datasets", headers=headers, content=f'{{"name": "{name}", "description": ""}}'
    )
    b = tenant.http.post(
        "/api/v1/datasets", headers=headers, content=f'{{ "description":"",\n"name":"{name}" }}'
    )
    assert a.status_code == b.status_code == 201
    assert a.json() == b.json()


def test_a_failed_request_keeps_no_key(tenant: Tenant) -> None:
    taken = tenant.dataset()
    idem = key()
    r = send(tenant, "POST", "/datasets", idem, {"name": taken["name"]})
    assert r.status_code == 409
    tenant.delete(f"/datasets/{taken['id']}")
    r = send(tenant, "POST", "/datasets", idem, {"name": taken["name"]})
    assert r.status_code == 201, r.text


def test_keys_belong_to_one_organization(tenant: Tenant, other_tenant: Tenant) -> None:
    idem, body = key(), {"name": f"ds-{key()[:8]}"}
    mine = send(tenant, "POST", "/datasets", idem, body)
    theirs = send(other_tenant, "POST", "/datasets", idem, body)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_concurrent_repeats_create_once(tenant: Tenant) -> None:
    idem, body = key(), {"name": f"ds-{key()[:8]}"}
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: send(tenant, "POST", "/datasets", idem, body), range(6)))
    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    names = [d["name"] for d in tenant.get("/datasets").json()["items"]]
    assert names.count(body["name"]) == 1


@pytest.mark.parametrize("bad", ["", "x" * 201])
def test_a_key_out_of_bounds_is_422(tenant: Tenant, bad: str) -> None:
    r = tenant.http.post(
        "/api/v1/datasets",
        headers={**tenant.headers, "Idempotency-Key": bad},
        json={"name": f"ds-{key()[:8]}"},
    )
    assert r.status_code == 422, r.text


def _age(engine: Engine, org_id: int, idem: str, by: timedelta) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.org_id == org_id, idempotency_keys.c.key == idem)
            .values(created_at=datetime.now(UTC) - by)
        )


def test_a_key_older_than_a_day_is_new_again(tenant: Tenant, engine: Engine) -> None:
    idem = key()
    first = send(tenant, "POST", "/datasets", idem, {"name": f"ds-{key()[:8]}"})
    _age(engine, tenant.org_id, idem, idempotency.KEEP - timedelta(minutes=1))
    assert send(tenant, "POST", "/datasets", idem, {"name": "other"}).status_code == 422
    _age(engine, tenant.org_id, idem, idempotency.KEEP + timedelta(minutes=1))
    again = send(tenant, "POST", "/datasets", idem, {"name": f"ds-{key()[:8]}"})
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]


def test_purge_forgets_only_old_keys(tenant: Tenant, engine: Engine) -> None:
    old, fresh = key(), key()
    for idem in (old, fresh):
        assert send(tenant, "POST", "/datasets", idem, {"name": f"ds-{key()[:8]}"}).is_success
    _age(engine, tenant.org_id, old, idempotency.KEEP + timedelta(hours=1))
    with engine.begin() as conn:
        assert idempotency.purge(conn) >= 1
        left = conn.execute(
            select(idempotency_keys.c.key).where(idempotency_keys.c.org_id == tenant.org_id)
        ).scalars()
        assert set(left) == {fresh}


def test_housekeeping_purges_old_keys(app: Any, tenant: Tenant, engine: Engine) -> None:
    """Every worker's housekeeping round forgets expired keys (not only a manual purge)."""
    old = key()
    assert send(tenant, "POST", "/datasets", old, {"name": f"ds-{key()[:8]}"}).is_success
    _age(engine, tenant.org_id, old, idempotency.KEEP + timedelta(hours=1))
    app.state.queue.keep_house()
    with engine.connect() as conn:
        left = conn.execute(
            select(idempotency_keys.c.key).where(idempotency_keys.c.key == old)
        ).scalars()
        assert list(left) == []
