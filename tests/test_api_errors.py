"""Bad input anywhere in the API gets a clear 4xx in the one error shape, never a 500; and a
request that does fail unexpectedly leaves nothing behind that later requests would trip on."""

from __future__ import annotations

import re
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


# --- unknown query parameters -------------------------------------------------------------


def _operations(http: Any) -> list[tuple[str, str, set[str]]]:
    """Every (method, path, query parameters) of the document, path parameters set to "1"."""
    spec = http.app.openapi()
    out = []
    for path, methods in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)  # /data/local-files/ lies outside /api/v1
        for method, operation in methods.items():
            query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            out.append((method.upper(), concrete, query))
    return out


def test_an_unknown_query_parameter_is_422_naming_it_on_every_route(
    tenant: Tenant, http: Any
) -> None:
    operations = _operations(http)
    assert len(operations) >= 20
    for method, path, declared in operations:
        for params in ({"mediatype": "IMAGE"}, {"limit": "5", "zzz": "1", "yyy": ""}):
            r = tenant.http.request(method, path, params=params, headers=tenant.headers)
            if method == "HEAD":  # the GET's answer without its body
                assert r.status_code == 422 and r.content == b"", (method, path)
                r = tenant.http.request("GET", path, params=params, headers=tenant.headers)
            error = _is_error(r, 422)
            unknown = sorted(set(params) - declared)
            assert error["code"] == "invalid", (method, path, error)
            assert all(repr(k) in error["message"] for k in unknown), (method, path, error)
            assert [d["loc"] for d in error["details"]] == [["query", k] for k in unknown]


def test_declared_query_parameters_are_still_taken(tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], b'{"row_data": "s3://b/a.jpg"}\n{"row_data": "s3://b/b.mp4"}\n')
    for params, count in (
        ({"dataset_id": ds["id"], "media_type": "IMAGE"}, 1),
        ({"dataset_id": ds["id"], "media_type": "video", "limit": 10}, 1),
        ({"dataset_id": ds["id"], "metadata": []}, 2),
    ):
        r = tenant.get("/data-rows", params=params)
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == count
    assert tenant.get(f"/datasets/{ds['id']}", params={"with_count": "true"}).status_code == 200
    assert tenant.http.get("/api/v1/health", params={"x": "1"}).status_code == 422


# --- media types: one rule everywhere -----------------------------------------------------

BAD_MEDIA_TYPES = ("NOPE", "", " ", "IMAGES", "image/png", "IMAGE,VIDEO", "ïmage")


def test_an_unknown_media_type_is_422_as_a_filter_and_as_an_import_option(
    tenant: Tenant,
) -> None:
    ds = tenant.dataset()
    for bad in BAD_MEDIA_TYPES:
        for path in ("/data-rows", "/data-rows/count"):
            error = _is_error(tenant.get(path, params={"media_type": bad}), 422)
            assert "media_type" in error["message"] and "IMAGE" in error["message"], error
        r = tenant.post(
            f"/datasets/{ds['id']}/data-rows",
            content=b'{"row_data": "s3://b/a.jpg"}\n',
            params={"media_type": bad},
        )
        upload_error = _is_error(r, 422)
        assert upload_error["message"] == error["message"], (bad, upload_error, error)
    assert tenant.get("/jobs").json()["items"] == []


def test_media_types_are_read_the_same_way_as_filters_options_and_row_fields(
    tenant: Tenant,
) -> None:
    ds = tenant.dataset()
    job = tenant.import_rows(
        ds["id"],
        b'{"row_data": "some text", "media_type": " text "}\n'
        b'{"row_data": "more text", "media_type": "NOPE"}\n',
    )
    assert job["counts"]["failed"] == 1
    [row_error] = tenant.errors(job["id"])
    listed = _is_error(tenant.get("/data-rows", params={"media_type": "NOPE"}), 422)
    assert row_error["message"] == listed["message"]
    for spelling in ("TEXT", "text", " Text "):
        r = tenant.get("/data-rows", params={"dataset_id": ds["id"], "media_type": spelling})
        assert [x["media_type"] for x in r.json()["items"]] == ["TEXT"], spelling
    job = tenant.import_rows(ds["id"], b'{"row_data": "s3://b/x"}\n', media_type=" image")
    assert job["options"]["media_type"] == "IMAGE" and job["counts"]["created"] == 1


# --- bounded filters, and a failing statement leaves no broken connection -------------------


def _tag_filters(n: int) -> list[tuple[str, str]]:
    return [("metadata", f"tag:eq:v{i}") for i in range(n)]


def test_too_many_filters_are_422_on_both_databases(tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(
        ds["id"],
        orjson.dumps(
            {"row_data": "s3://b/t.jpg", "metadata_fields": [{"name": "tag", "value": "v0"}]}
        ),
    )
    for path in ("/data-rows", "/data-rows/count"):
        assert tenant.get(path, params=_tag_filters(1)).status_code == 200
        r = tenant.get(path, params=[*_tag_filters(50)])
        assert r.status_code == 200, r.text
        r = tenant.get(path, params=[*_tag_filters(49), ("tag_contains", "v")])
        assert r.status_code == 200, r.text
        for params in (
            _tag_filters(51),
            [*_tag_filters(50), ("tag_contains", "v")],
            _tag_filters(450),
            [("metadata", "split:eq:train")] * 60,
        ):
            error = _is_error(tenant.get(path, params=params), 422)
            assert "at most" in error["message"], error
        many = [("global_key", "k")] * 65
        error = _is_error(tenant.get(path, params=many), 422)
        assert "at most 64 query parameters" in error["message"]
    rows = tenant.get("/data-rows", params=[("dataset_id", ds["id"]), *_tag_filters(1)])
    assert len(rows.json()["items"]) == 1


def test_a_database_error_leaves_the_pool_healthy(
    tenant: Tenant, engine: Engine, http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement the database refuses (on PostgreSQL it aborts the transaction) must not
    leave its connection half-used for the next request."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from tether.api.routes import datasets as datasets_route

    def refused(conn: Any, org_id: int) -> Any:
        conn.execute(text("SELECT no_such_column FROM no_such_table"))

    tenant.dataset()
    monkeypatch.setattr(datasets_route.datasets, "list_all", refused)
    for _ in range(3):
        with pytest.raises(DBAPIError):
            tenant.get("/datasets")
    monkeypatch.undo()
    for _ in range(5):
        newcomer = make_tenant(engine, http)
        assert newcomer.get("/datasets").json() == {"items": []}
        newcomer.dataset()
        assert len(tenant.get("/datasets").json()["items"]) == 1


# --- metadata field names and filters -----------------------------------------------------


@pytest.mark.parametrize("name", ["a:b", ":x", "x:", "score:gt:1", " a : b "])
def test_a_field_name_with_a_colon_is_refused(tenant: Tenant, name: str) -> None:
    error = _is_error(tenant.post("/metadata-schema", json={"name": name, "kind": "string"}), 422)
    assert "':'" in error["message"]
    r = tenant.post("/metadata-schema", json={"name": "plain", "kind": "string"})
    assert r.status_code == 201
    error = _is_error(tenant.patch("/metadata-schema/plain", json={"name": name}), 422)
    assert "':'" in error["message"]
    assert [f["name"] for f in tenant.get("/metadata-schema").json()["fields"]][-1] == "plain"


def test_a_field_named_with_a_colon_earlier_is_filtered_by_its_id(
    tenant: Tenant, engine: Engine
) -> None:
    from sqlalchemy import update

    from tether.db.tables import metadata_fields

    field = tenant.post("/metadata-schema", json={"name": "legacy", "kind": "string"}).json()
    with engine.begin() as conn:  # as a field made before names with ':' were refused
        conn.execute(
            update(metadata_fields).where(metadata_fields.c.id == field["id"]).values(name="a:b")
        )
    ds = tenant.dataset()
    rows = [
        {"row_data": f"s3://b/{v}.jpg", "metadata_fields": [{"name": "a:b", "value": v}]}
        for v in ("x:1", "y")
    ]
    job = tenant.import_rows(ds["id"], b"".join(orjson.dumps(r) + b"\n" for r in rows))
    assert job["counts"]["created"] == 2, tenant.errors(job["id"])
    for value, expected in (("x:1", ["s3://b/x:1.jpg"]), ("y", ["s3://b/y.jpg"]), ("z", [])):
        r = tenant.get("/data-rows", params={"metadata": f"{field['id']}:eq:{value}"})
        assert [x["row_data"] for x in r.json()["items"]] == expected
    error = _is_error(tenant.get("/data-rows", params={"metadata": "a:b:eq:y"}), 422)
    assert "unknown metadata field 'a'" in error["message"]


# --- a taken global key is a conflict -----------------------------------------------------


def test_a_global_key_another_row_holds_is_409_global_key_exists(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    ds, elsewhere = tenant.dataset(), tenant.dataset()
    tenant.import_rows(ds["id"], b'{"row_data": "s3://b/0.jpg", "global_key": "held"}\n')
    tenant.import_rows(elsewhere["id"], b'{"row_data": "s3://b/1.jpg", "global_key": "far"}\n')
    tenant.import_rows(ds["id"], b'{"row_data": "s3://b/2.jpg", "global_key": "mine"}\n')
    other_tenant.import_rows(
        other_tenant.dataset()["id"], b'{"row_data": "s3://b/3.jpg", "global_key": "theirs"}\n'
    )
    rows = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    mine = next(r for r in rows if r["global_key"] == "mine")
    for taken in ("held", "far"):
        for body in ({"global_key": taken}, {"global_key": taken, "external_id": "e"}):
            error = _is_error(tenant.patch(f"/data-rows/{mine['id']}", json=body), 409)
            assert error["code"] == "global_key_exists" and taken in error["message"]
        [result] = tenant.post(
            "/data-rows/global-keys",
            json={"assignments": [{"data_row_id": mine["id"], "global_key": taken}]},
        ).json()["results"]
        assert (result["ok"], result["code"]) == (False, "global_key_exists")
    assert tenant.get(f"/data-rows/{mine['id']}").json()["global_key"] == "mine"
    r = tenant.patch(f"/data-rows/{mine['id']}", json={"global_key": "theirs"})
    assert r.status_code == 200 and r.json()["global_key"] == "theirs"
    job = tenant.import_rows(ds["id"], b'{"row_data": "s3://b/4.jpg", "global_key": "held"}\n')
    assert [e["code"] for e in tenant.errors(job["id"])] == ["global_key_exists"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/datasets", b'{"name": "a", "name": "b"}'),
        ("post", "/metadata-schema", b'{"name": "w", "kind": "string", "kind": "number"}'),
        ("post", "/data-rows/lookup", b'{"global_keys": ["a"], "global_keys": ["b"]}'),
        ("post", "/data-rows/delete", b'{"ids": [1], "ids": [2]}'),
    ],
)
def test_a_key_given_twice_in_a_body_is_refused(
    tenant: Tenant, method: str, path: str, body: bytes
) -> None:
    """The import files' rule for every JSON body: no silent last-one-wins."""
    r = getattr(tenant, method)(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["code"] == "duplicate_key"


def test_a_key_given_twice_in_a_row_patch_changes_nothing(tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(
        ds["id"], f'{{"row_data": "s3://b/a.jpg", "global_key": "twice-{ds["id"]}"}}\n'
    )
    row = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"][0]
    body = b'{"external_id": "first", "external_id": "second"}'
    r = tenant.http.patch(
        f"/api/v1/data-rows/{row['id']}",
        content=body,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "twice" in r.json()["error"]["message"], r.text
    assert tenant.get(f"/data-rows/{row['id']}").json()["external_id"] is None
