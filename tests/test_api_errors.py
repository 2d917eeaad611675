"""Bad input anywhere in the API gets a clear 4xx in the one error shape, never a 500; and a
request that does fail unexpectedly leaves nothing behind that later requests would trip on."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant, make_tenant
from tether.catalog import datasets as datasets_service

HUGE = 2**70
BIG = 2**63


def _is_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def test_ids_beyond_the_columns_range_are_422(tenant: Tenant) -> None:
    for path in (f"/data-rows/{HUGE}", f"/data-rows/{BIG}", "/data-rows/0", "/data-rows/-1"):
        error = _is_error(tenant.get(path), 422)
        assert "row_id" in error["message"], error
    _is_error(tenant.patch(f"/data-rows/{BIG}", json={"external_id": "x"}), 422)
    _is_error(tenant.delete(f"/data-rows/{HUGE}"), 422)
    for params in ({"after": HUGE}, {"dataset_id": HUGE}, {"dataset_id": 2**31}):
        _is_error(tenant.get("/data-rows", params=params), 422)
    assert tenant.get("/data-rows", params={"after": 2**63 - 1}).json() == {
        "items": [],
        "next_cursor": None,
    }
    _is_error(tenant.post("/data-rows/delete", json={"ids": [HUGE]}), 422)
    _is_error(
        tenant.post(
            "/data-rows/global-keys",
            json={"assignments": [{"data_row_id": BIG, "global_key": "k"}]},
        ),
        422,
    )


def test_a_dataset_named_by_a_huge_number_is_404(tenant: Tenant) -> None:
    for ref in (str(HUGE), str(2**31), "0", "²"):
        error = _is_error(tenant.get(f"/datasets/{ref}"), 404)
        assert error["code"] == "not_found"


def test_job_error_cursor_out_of_range_is_422(tenant: Tenant) -> None:
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], b'{"global_key": "no-data"}\n')
    _is_error(tenant.get(f"/jobs/{job['id']}/errors", params={"after": HUGE}), 422)
    assert tenant.get(f"/jobs/{job['id']}/errors", params={"after": 2**31 - 1}).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_nul_characters_in_path_query_and_body_are_422(tenant: Tenant) -> None:
    ds = tenant.dataset()
    for path, params in (
        ("/datasets/a%00b", None),
        ("/metadata-schema/a%00b", None),
        ("/data-rows", {"global_key": "a\x00b"}),
        ("/data-rows", {"global_key_prefix": "a\x00"}),
        ("/data-rows", {"tag_contains": "\x00"}),
        ("/data-rows", {"external_id": "x\x00"}),
        ("/data-rows", {"metadata": "tag:eq:a\x00b"}),
    ):
        error = _is_error(tenant.get(path, params=params), 422)
        assert "NUL" in error["message"], (path, params, error)
    for path, body in (
        ("/datasets", {"name": "a\x00b"}),
        ("/data-rows/lookup", {"global_keys": ["ok", "a\x00b"]}),
        ("/data-rows/global-keys/clear", {"global_keys": ["a\x00b"]}),
        ("/data-rows/global-keys", {"assignments": [{"data_row_id": 1, "global_key": "\x00"}]}),
        ("/metadata-schema", {"name": "a\x00b", "kind": "string"}),
        ("/metadata-schema", {"name": "weather", "kind": "enum", "options": ["a\x00"]}),
    ):
        error = _is_error(tenant.post(path, json=body), 422)
        assert "NUL" in error["message"], (path, error)
    error = _is_error(tenant.patch(f"/datasets/{ds['id']}", json={"description": "\x00"}), 422)
    assert "NUL" in error["message"]
    assert [d["name"] for d in tenant.get("/datasets").json()["items"]] == [ds["name"]]
    assert [f["name"] for f in tenant.get("/metadata-schema").json()["fields"]] == [
        "tag",
        "split",
        "captureDateTime",
        "embedding",
    ]


def test_nul_in_an_imported_row_is_a_per_row_error(tenant: Tenant) -> None:
    ds = tenant.dataset()
    body = b"".join(
        orjson.dumps(r) + b"\n"
        for r in (
            {"row_data": "s3://b/0.jpg", "global_key": "a\x00b"},
            {"row_data": "s3://b/1.jpg", "external_id": "e\x00"},
            {"row_data": "s3://b/2.jpg", "metadata_fields": [{"name": "tag", "value": "t\x00"}]},
            {"row_data": "s3://b/3.jpg", "global_key": "fine"},
        )
    )
    job = tenant.import_rows(ds["id"], body)
    assert job["status"] == "completed_with_errors", job
    assert job["counts"] == {"created": 1, "updated": 0, "failed": 3}
    errors = tenant.errors(job["id"])
    assert [e["index"] for e in errors] == [0, 1, 2]
    assert errors[0]["global_key"] == "a\\x00b"
    assert errors[0]["code"] == "invalid_global_key"
    assert errors[1]["code"] == "invalid_external_id"
    assert errors[2]["code"] == "invalid_metadata"
    assert "tag" in errors[2]["message"]
    rows = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    assert [r["global_key"] for r in rows] == ["fine"]


def test_out_of_range_metadata_values_are_per_row_errors(tenant: Tenant) -> None:
    r = tenant.post("/metadata-schema", json={"name": "score", "kind": "number"})
    assert r.status_code == 201
    ds = tenant.dataset()
    rows = [
        {
            "row_data": "s3://b/0.jpg",
            "metadata_fields": [{"name": "score", "value": "1" + "0" * 30}],
        },
        {"row_data": "s3://b/1.jpg", "metadata_fields": [{"name": "score", "value": "1e999"}]},
        {
            "row_data": "s3://b/2.jpg",
            "metadata_fields": [{"name": "captureDateTime", "value": "0001-01-01T00:00:00+05:00"}],
        },
        {
            "row_data": "s3://b/3.jpg",
            "metadata_fields": [{"name": "captureDateTime", "value": "9999-12-31T23:00:00-05:00"}],
        },
        {"row_data": "s3://b/4.jpg", "metadata_fields": [{"name": "score", "value": 2**63 - 1}]},
    ]
    job = tenant.import_rows(ds["id"], b"".join(orjson.dumps(r) + b"\n" for r in rows))
    assert job["status"] == "completed_with_errors", job
    assert job["counts"] == {"created": 1, "updated": 0, "failed": 4}
    errors = tenant.errors(job["id"])
    assert [e["code"] for e in errors] == ["invalid_metadata"] * 4
    assert "score" in errors[0]["message"] and "out of range" in errors[0]["message"]
    assert "finite" in errors[1]["message"]
    assert "captureDateTime" in errors[2]["message"] and "range" in errors[2]["message"]
    assert "captureDateTime" in errors[3]["message"]
    [row] = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    assert row["metadata_fields"][0]["value"] == 2**63 - 1
    for spec in ("captureDateTime:gte:0001-01-01T00:00:00+05:00", f"score:gt:{10**30}"):
        error = _is_error(tenant.get("/data-rows", params={"metadata": spec}), 422)
        assert "range" in error["message"]
    _is_error(tenant.get("/data-rows", params={"created_after": "0001-01-01T00:00:00+05:00"}), 422)


def test_a_failed_request_leaves_no_stale_connection(
    tenant: Tenant, engine: Engine, http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in the middle of reading a result must not leave its cursor open on a pooled
    connection: on SQLite that pins an old snapshot, and later requests would not see new
    API keys or rows."""
    tenant.dataset()
    tenant.dataset()
    real = datasets_service._public

    def broken(row: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(datasets_service, "_public", broken)
    with pytest.raises(RuntimeError, match="boom"):
        tenant.get("/datasets")
    monkeypatch.setattr(datasets_service, "_public", real)
    for _ in range(3):
        newcomer = make_tenant(engine, http)
        r = newcomer.get("/datasets")
        assert r.status_code == 200, r.text
        assert r.json() == {"items": []}
        created = newcomer.dataset()
        assert tenant.get(f"/datasets/{created['id']}").status_code == 404
    assert len(tenant.get("/datasets").json()["items"]) == 2


def test_global_key_lookup_raises_no_deprecation_warning(tenant: Tenant) -> None:
    r = tenant.post("/data-rows/lookup", json={"global_keys": ["k"]})
    assert r.json() == {"results": [{"global_key": "k", "data_row_id": None}]}
