from tests.conftest import Tenant


def test_health_is_open(http) -> None:
    r = http.get("/api/v1/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_import_then_list(tenant: Tenant) -> None:
    ds = tenant.dataset()
    body = '{"row_data": "s3://b/1.jpg", "global_key": "k1"}\n{"row_data": "s3://b/2.png"}\n'
    job = tenant.import_rows(ds["id"], body)
    assert job["status"] == "completed", job
    assert job["counts"] == {"created": 2, "updated": 0, "failed": 0}
    rows = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    assert [r["row_data"] for r in rows] == ["s3://b/1.jpg", "s3://b/2.png"]
    assert [r["media_type"] for r in rows] == ["IMAGE", "IMAGE"]
