"""Datasets through the in-process API: create, list, get, rename, delete."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import Tenant

# See test_api_data_rows.py: Result.tuples() in catalog/data_rows.py (pinned elsewhere).
pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")


def _name(prefix: str = "ds") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _ndjson(n: int, prefix: str) -> str:
    return "".join(
        f'{{"row_data": "s3://b/{prefix}/{i}.jpg", "global_key": "{prefix}-{i}"}}\n'
        for i in range(n)
    )


def test_create_returns_the_dataset(tenant: Tenant) -> None:
    name = _name()
    r = tenant.post("/datasets", json={"name": name, "description": "street scenes"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["name"] == name
    assert ds["description"] == "street scenes"
    assert isinstance(ds["id"], int)
    assert ds["created_by"] == tenant.user_id
    assert ds["created_at"] and ds["updated_at"]
    assert tenant.get(f"/datasets/{ds['id']}").json() == ds


def test_name_is_trimmed_and_blank_names_refused(tenant: Tenant) -> None:
    name = _name()
    assert tenant.post("/datasets", json={"name": f"  {name} "}).json()["name"] == name
    for bad in ("", "   ", "x" * 201):
        r = tenant.post("/datasets", json={"name": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["code"] == "invalid"
    r = tenant.post("/datasets", json={"description": "no name"})
    assert r.status_code == 422
    assert "name" in r.json()["error"]["message"]


def test_duplicate_name_is_409(tenant: Tenant) -> None:
    name = _name()
    tenant.dataset(name)
    r = tenant.post("/datasets", json={"name": name})
    assert r.status_code == 409
    assert r.json() == {
        "error": {
            "code": "conflict",
            "message": f"a dataset named {name!r} exists already",
            "details": None,
        }
    }
    names = [d["name"] for d in tenant.get("/datasets").json()["items"]]
    assert names.count(name) == 1


def test_same_name_in_two_organizations(tenant: Tenant, other_tenant: Tenant) -> None:
    name = _name()
    mine = tenant.dataset(name)
    theirs = other_tenant.dataset(name)
    assert mine["id"] != theirs["id"]
    assert tenant.get(f"/datasets/{name}").json()["id"] == mine["id"]
    assert other_tenant.get(f"/datasets/{name}").json()["id"] == theirs["id"]


def test_list_is_sorted_by_name_and_scoped(tenant: Tenant, other_tenant: Tenant) -> None:
    assert tenant.get("/datasets").json() == {"items": []}
    created = [tenant.dataset(n) for n in ("b-two", "a-one", "c-three")]
    other_tenant.dataset("a-zero")
    items = tenant.get("/datasets").json()["items"]
    assert [d["name"] for d in items] == ["a-one", "b-two", "c-three"]
    assert {d["id"] for d in items} == {d["id"] for d in created}


def test_get_by_id_and_by_name(tenant: Tenant) -> None:
    ds = tenant.dataset()
    assert tenant.get(f"/datasets/{ds['id']}").json()["name"] == ds["name"]
    assert tenant.get(f"/datasets/{ds['name']}").json()["id"] == ds["id"]
    r = tenant.get("/datasets/no-such-dataset")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert "no-such-dataset" in r.json()["error"]["message"]


def test_row_count_on_request(tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], _ndjson(3, uuid.uuid4().hex[:6]))
    assert tenant.get(f"/datasets/{ds['id']}", params={"with_count": True}).json()["row_count"] == 3
    assert tenant.get(f"/datasets/{ds['id']}").json()["row_count"] is None


def test_rename_and_describe(tenant: Tenant) -> None:
    ds = tenant.dataset()
    new = _name("renamed")
    r = tenant.patch(f"/datasets/{ds['id']}", json={"name": new})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == new
    assert r.json()["description"] == ""
    assert r.json()["updated_at"] >= ds["updated_at"]
    assert tenant.get(f"/datasets/{ds['name']}").status_code == 404
    assert tenant.get(f"/datasets/{new}").json()["id"] == ds["id"]
    r = tenant.patch(f"/datasets/{new}", json={"description": "now described"})
    assert r.json()["name"] == new
    assert r.json()["description"] == "now described"


def test_rename_onto_a_taken_name_is_409(tenant: Tenant) -> None:
    a, b = tenant.dataset(), tenant.dataset()
    r = tenant.patch(f"/datasets/{a['id']}", json={"name": b["name"]})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert tenant.get(f"/datasets/{a['id']}").json()["name"] == a["name"]


def test_rename_to_a_blank_name_is_422(tenant: Tenant) -> None:
    ds = tenant.dataset()
    for bad in ("", "   "):
        r = tenant.patch(f"/datasets/{ds['id']}", json={"name": bad})
        assert r.status_code == 422
    assert tenant.get(f"/datasets/{ds['id']}").json()["name"] == ds["name"]


def test_delete_takes_the_rows(tenant: Tenant) -> None:
    keep, doomed = tenant.dataset(), tenant.dataset()
    prefix = uuid.uuid4().hex[:6]
    tenant.import_rows(keep["id"], _ndjson(2, f"keep{prefix}"))
    tenant.import_rows(doomed["id"], _ndjson(3, f"gone{prefix}"))
    doomed_rows = tenant.get("/data-rows", params={"dataset_id": doomed["id"]}).json()["items"]
    assert len(doomed_rows) == 3
    r = tenant.delete(f"/datasets/{doomed['name']}")
    assert r.status_code == 202, r.text
    job = r.json()
    assert (job["kind"], job["dataset_id"], job["deleted_rows"]) == (
        "delete_dataset",
        doomed["id"],
        3,
    )
    # The job is queued once the request commits, and the test queue runs it at once: it has
    # ended by the time the answer is read.
    job = tenant.get(f"/jobs/{job['id']}").json()
    assert job["status"] == "completed"
    assert job["counts"] == {"deleted": 3, "failed": 0}
    assert job["progress"] == {"done": 3, "total": 3}
    assert tenant.get(f"/datasets/{doomed['id']}").status_code == 404
    for row in doomed_rows:
        assert tenant.get(f"/data-rows/{row['id']}").status_code == 404
    lookup = tenant.post(
        "/data-rows/lookup", json={"global_keys": [f"gone{prefix}-0", f"keep{prefix}-0"]}
    ).json()["results"]
    assert lookup[0]["data_row_id"] is None
    assert lookup[1]["data_row_id"] is not None
    remaining = tenant.get("/data-rows").json()["items"]
    assert {r["dataset_id"] for r in remaining} == {keep["id"]}
    assert len(remaining) == 2
    # The freed global keys and name can be used again.
    again = tenant.dataset(doomed["name"])
    job = tenant.import_rows(again["id"], _ndjson(3, f"gone{prefix}"))
    assert job["counts"] == {"created": 3, "updated": 0, "failed": 0}


def test_delete_unknown_dataset_is_404(tenant: Tenant) -> None:
    r = tenant.delete("/datasets/never-existed")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_another_organizations_dataset_is_404(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = other_tenant.dataset()
    other_tenant.import_rows(theirs["id"], _ndjson(1, uuid.uuid4().hex[:6]))
    for ref in (theirs["id"], theirs["name"]):
        assert tenant.get(f"/datasets/{ref}").status_code == 404
        assert tenant.patch(f"/datasets/{ref}", json={"name": "stolen"}).status_code == 404
        assert tenant.get(f"/datasets/{ref}/export").status_code == 404
        r = tenant.post(f"/datasets/{ref}/data-rows", content=b'{"row_data": "s3://b/x.jpg"}')
        assert r.status_code == 404
        assert tenant.delete(f"/datasets/{ref}").status_code == 404
    still = other_tenant.get(f"/datasets/{theirs['id']}", params={"with_count": True}).json()
    assert still["name"] == theirs["name"]
    assert still["row_count"] == 1


def test_concurrent_creates_of_one_name_make_one_dataset(tenant: Tenant) -> None:
    name = _name("race")

    def attempt(_: int) -> int:
        return int(tenant.post("/datasets", json={"name": name}).status_code)

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(attempt, range(6)))
    assert codes == [201, 409, 409, 409, 409, 409], codes
    assert [d["name"] for d in tenant.get("/datasets").json()["items"]] == [name]


def test_rows_of_a_dataset_being_deleted_are_not_listed_by_it(tenant: Tenant, engine: Any) -> None:
    """Between the request and the end of its job, the dataset's rows are not its rows any
    more: a listing or count filtered by it finds nothing."""
    from tether.catalog import datasets as datasets_service

    ds = tenant.dataset()
    tenant.import_rows(ds["id"], _ndjson(3, f"going{ds['id']}"))
    assert len(tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]) == 3
    with engine.begin() as conn:  # what the request does; the job that deletes rows never runs
        datasets_service.mark_deleted(conn, tenant.org_id, ds["id"])
    assert tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"] == []
    assert tenant.get("/data-rows/count", params={"dataset_id": ds["id"]}).json()["count"] == 0
