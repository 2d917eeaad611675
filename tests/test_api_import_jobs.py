"""Bulk create as a job, through the in-process API: statuses, counts, per-row errors,
duplicates, upsert, idempotency, bad files, request size limits."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from tests.conftest import Tenant
from tether.config import Settings

Row = dict[str, Any]
# See test_api_data_rows.py: Result.tuples() in catalog/data_rows.py (pinned elsewhere).
pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")


def ndjson(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def rows_of(tenant: Tenant, dataset_id: int) -> list[Row]:
    r = tenant.get("/data-rows", params={"dataset_id": dataset_id, "limit": 1000})
    assert r.status_code == 200 and r.json()["next_cursor"] is None
    return r.json()["items"]  # type: ignore[no-any-return]


def uploads(settings: Settings) -> set[str]:
    folder = settings.uploads_dir
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def jobs_of(tenant: Tenant) -> list[Row]:
    return tenant.get("/jobs").json()["items"]  # type: ignore[no-any-return]


# --- statuses and counts -------------------------------------------------------------------


def test_a_clean_import_completes(tenant: Tenant) -> None:
    ds = tenant.dataset()
    body = ndjson(
        [
            {"row_data": "s3://b/1.jpg", "global_key": "c-1"},
            {"row_data": "s3://b/2.mp4", "external_id": "two"},
            {"row_data": "hello there"},
        ]
    )
    r = tenant.post(f"/datasets/{ds['name']}/data-rows", content=body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "import"
    assert job["status"] == "completed"
    assert job["dataset_id"] == ds["id"]
    assert job["format"] == "ndjson/labelbox"
    assert job["progress"] == {"done": 3, "total": 3}
    assert job["counts"] == {"created": 3, "updated": 0, "failed": 0}
    assert job["message"] is None
    assert job["options"]["upsert"] is False
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert tenant.get(f"/jobs/{job['id']}").json() == job
    assert tenant.errors(job["id"]) == []
    rows = rows_of(tenant, ds["id"])
    assert [(r["row_data"], r["media_type"], r["global_key"], r["external_id"]) for r in rows] == [
        ("s3://b/1.jpg", "IMAGE", "c-1", None),
        ("s3://b/2.mp4", "VIDEO", None, "two"),
        ("hello there", "TEXT", None, None),
    ]
    assert {r["created_by"] for r in rows} == {tenant.user_id}
    assert [j["id"] for j in jobs_of(tenant)] == [job["id"]]


def test_bad_rows_are_reported_and_good_rows_land(tenant: Tenant) -> None:
    ds = tenant.dataset()
    long_key, long_ext = "k" * 201, "e" * 1001
    lines = [
        orjson.dumps({"row_data": "s3://b/good-0.jpg", "global_key": "g0"}),
        orjson.dumps({"global_key": "m1", "external_id": "x1"}),
        orjson.dumps({"row_data": "s3://b/2.jpg", "media_type": "HOLOGRAM", "global_key": "h2"}),
        orjson.dumps({"row_data": "s3://b/3.jpg", "global_key": long_key}),
        orjson.dumps({"row_data": "s3://b/4.jpg", "external_id": long_ext}),
        orjson.dumps(
            {
                "row_data": "s3://b/5.jpg",
                "global_key": "meta5",
                "metadata_fields": [{"name": "split", "value": "holdout"}],
            }
        ),
        b'{"row_data": "s3://b/6.jpg", "global_key": ',
        orjson.dumps(
            {"row_data": "s3://b/7.jpg", "metadata_fields": [{"name": "nope", "value": 1}]}
        ),
        orjson.dumps(
            {"row_data": "s3://b/8.jpg", "attachments": [{"type": "SMELL", "value": "x"}]}
        ),
        orjson.dumps({"row_data": "s3://b/unknown.xyz"}),
        orjson.dumps(["not", "an", "object"]),
        orjson.dumps({"row_data": "s3://b/good-11.png", "external_id": "g11"}),
    ]
    job = tenant.import_rows(ds["id"], b"\n".join(lines) + b"\n")
    assert job["status"] == "completed_with_errors"
    assert job["counts"] == {"created": 2, "updated": 0, "failed": 10}
    assert job["progress"] == {"done": 12, "total": 12}
    errors = tenant.errors(job["id"])
    assert [e["index"] for e in errors] == list(range(1, 11))
    by_index = {e["index"]: e for e in errors}
    assert by_index[1] == {
        "index": 1,
        "id": None,
        "ok": False,
        "item_key": "1",
        "details": {},
        "global_key": "m1",
        "external_id": "x1",
        "code": "missing_row_data",
        "message": "row_data is missing or empty",
    }
    assert by_index[2]["code"] == "invalid_media_type"
    assert by_index[2]["global_key"] == "h2"
    assert "HOLOGRAM" in by_index[2]["message"]
    assert by_index[3]["code"] == "invalid_global_key"
    assert "201 characters" in by_index[3]["message"] and "200" in by_index[3]["message"]
    assert by_index[4]["code"] == "invalid_external_id"
    assert "1001 characters" in by_index[4]["message"]
    assert by_index[5]["code"] == "invalid_metadata"
    assert by_index[5]["global_key"] == "meta5"
    assert "'split'" in by_index[5]["message"] and "holdout" in by_index[5]["message"]
    assert by_index[6]["code"] == "malformed_json"
    assert by_index[6]["message"].startswith("line 7: malformed JSON")
    assert by_index[7]["code"] == "invalid_metadata"
    assert "'nope'" in by_index[7]["message"]
    assert by_index[8]["code"] == "invalid_attachment"
    assert "SMELL" in by_index[8]["message"]
    assert by_index[9]["code"] == "invalid_media_type"
    assert "media_type" in by_index[9]["message"]
    assert by_index[10]["code"] == "malformed_item"
    assert [r["row_data"] for r in rows_of(tenant, ds["id"])] == [
        "s3://b/good-0.jpg",
        "s3://b/good-11.png",
    ]


def test_every_row_bad_still_completes_with_errors(tenant: Tenant) -> None:
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], ndjson([{"global_key": f"n{i}"} for i in range(3)]))
    assert job["status"] == "completed_with_errors"
    assert job["counts"] == {"created": 0, "updated": 0, "failed": 3}
    assert [e["global_key"] for e in tenant.errors(job["id"])] == ["n0", "n1", "n2"]
    assert rows_of(tenant, ds["id"]) == []


def test_error_pages_follow_the_cursor(tenant: Tenant) -> None:
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], ndjson([{"external_id": f"e{i}"} for i in range(7)]))
    seen: list[int] = []
    after = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 3}
        if after is not None:
            params["after"] = after
        page = tenant.get(f"/jobs/{job['id']}/errors", params=params).json()
        seen += [e["index"] for e in page["items"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert seen == list(range(7))


# --- global keys: duplicates, existing keys, upsert -----------------------------------------


def test_duplicate_and_existing_global_keys_are_per_row_errors(tenant: Tenant) -> None:
    ds = tenant.dataset()
    first = tenant.import_rows(ds["id"], ndjson([{"row_data": "s3://b/0.jpg", "global_key": "k1"}]))
    [existing] = rows_of(tenant, ds["id"])
    body = ndjson(
        [
            {"row_data": "s3://b/1.jpg", "global_key": "k1"},
            {"row_data": "s3://b/2.jpg", "global_key": "k2"},
            {"row_data": "s3://b/3.jpg", "global_key": "k2", "external_id": "again"},
            {"row_data": "s3://b/4.jpg", "global_key": "k3"},
        ]
    )
    job = tenant.import_rows(ds["id"], body)
    assert job["id"] != first["id"]
    assert job["status"] == "completed_with_errors"
    assert job["counts"] == {"created": 2, "updated": 0, "failed": 2}
    assert tenant.errors(job["id"]) == [
        {
            "index": 0,
            "id": None,
            "ok": False,
            "item_key": "0",
            "details": {},
            "global_key": "k1",
            "external_id": None,
            "code": "global_key_exists",
            "message": f"global key 'k1' is already used by data row {existing['id']}",
        },
        {
            "index": 2,
            "id": None,
            "ok": False,
            "item_key": "2",
            "details": {},
            "global_key": "k2",
            "external_id": "again",
            "code": "duplicate_global_key",
            "message": "global key 'k2' appears earlier in this import",
        },
    ]
    rows = rows_of(tenant, ds["id"])
    assert [(r["global_key"], r["row_data"]) for r in rows] == [
        ("k1", "s3://b/0.jpg"),
        ("k2", "s3://b/2.jpg"),
        ("k3", "s3://b/4.jpg"),
    ]


def test_duplicates_are_caught_across_chunks(tenant: Tenant, settings: Settings) -> None:
    assert settings.import_chunk_rows == 50
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], ndjson([{"row_data": "s3://b/old.jpg", "global_key": "old"}]))
    rows: list[Row] = [{"row_data": f"s3://b/{i}.jpg", "global_key": f"x{i}"} for i in range(120)]
    rows[77]["global_key"] = "old"
    rows[110]["global_key"] = "x5"
    rows[111]["global_key"] = "x60"
    job = tenant.import_rows(ds["id"], ndjson(rows))
    assert job["counts"] == {"created": 117, "updated": 0, "failed": 3}
    assert [(e["index"], e["code"]) for e in tenant.errors(job["id"])] == [
        (77, "global_key_exists"),
        (110, "duplicate_global_key"),
        (111, "duplicate_global_key"),
    ]
    assert len(rows_of(tenant, ds["id"])) == 118


def test_upsert_updates_rows_with_a_known_global_key(tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(
        ds["id"],
        ndjson(
            [
                {
                    "row_data": "s3://b/a.jpg",
                    "global_key": "u1",
                    "external_id": "before",
                    "metadata_fields": [{"name": "split", "value": "train"}],
                },
                {"row_data": "s3://b/b.jpg", "global_key": "u2"},
            ]
        ),
    )
    before = {r["global_key"]: r for r in rows_of(tenant, ds["id"])}
    body = ndjson(
        [
            {
                "row_data": "s3://b/a2.mp4",
                "global_key": "u1",
                "external_id": "after",
                "metadata_fields": [{"name": "split", "value": "valid"}],
            },
            {"row_data": "s3://b/c.jpg", "global_key": "u3"},
            {"row_data": "s3://b/c2.jpg", "global_key": "u3"},
        ]
    )
    job = tenant.import_rows(ds["id"], body, upsert="true")
    assert job["options"]["upsert"] is True
    assert job["status"] == "completed_with_errors"
    assert job["counts"] == {"created": 1, "updated": 1, "failed": 1}
    assert [(e["index"], e["code"]) for e in tenant.errors(job["id"])] == [
        (2, "duplicate_global_key")
    ]
    after = {r["global_key"]: r for r in rows_of(tenant, ds["id"])}
    assert set(after) == {"u1", "u2", "u3"}
    updated = after["u1"]
    assert updated["id"] == before["u1"]["id"]
    assert updated["row_data"] == "s3://b/a2.mp4"
    assert updated["media_type"] == "VIDEO"
    assert updated["external_id"] == "after"
    assert [m["value"] for m in updated["metadata_fields"]] == ["valid"]
    assert updated["created_at"] == before["u1"]["created_at"]
    assert updated["updated_at"] > before["u1"]["updated_at"]
    assert after["u2"] == before["u2"]
    assert after["u3"]["row_data"] == "s3://b/c.jpg"
    listed = tenant.get("/data-rows", params={"metadata": "split:eq:valid"}).json()["items"]
    assert [r["id"] for r in listed] == [updated["id"]]
    assert tenant.get("/data-rows", params={"metadata": "split:eq:train"}).json()["items"] == []


def test_upsert_does_not_move_a_row_from_another_dataset(tenant: Tenant) -> None:
    home, other = tenant.dataset(), tenant.dataset()
    tenant.import_rows(home["id"], ndjson([{"row_data": "s3://b/a.jpg", "global_key": "mine"}]))
    [row] = rows_of(tenant, home["id"])
    job = tenant.import_rows(
        other["id"], ndjson([{"row_data": "s3://b/z.jpg", "global_key": "mine"}]), upsert="true"
    )
    assert job["counts"] == {"created": 0, "updated": 0, "failed": 1}
    [error] = tenant.errors(job["id"])
    assert error["code"] == "global_key_in_other_dataset"
    assert str(row["id"]) in error["message"]
    assert rows_of(tenant, home["id"]) == [row]
    assert rows_of(tenant, other["id"]) == []


def test_global_keys_are_unique_per_organization_only(tenant: Tenant, other_tenant: Tenant) -> None:
    rows = ndjson([{"row_data": "s3://b/1.jpg", "global_key": "same"}])
    for who in (tenant, other_tenant):
        ds = who.dataset("same-name")
        job = who.import_rows(ds["id"], rows)
        assert job["counts"] == {"created": 1, "updated": 0, "failed": 0}
    mine = tenant.post("/data-rows/lookup", json={"global_keys": ["same"]}).json()["results"]
    theirs = other_tenant.post("/data-rows/lookup", json={"global_keys": ["same"]}).json()
    assert mine[0]["data_row_id"] != theirs["results"][0]["data_row_id"]
    assert mine[0]["data_row_id"] is not None


# --- idempotency ---------------------------------------------------------------------------


def test_a_repeated_idempotency_key_returns_the_first_job(
    tenant: Tenant, other_tenant: Tenant, settings: Settings
) -> None:
    ds = tenant.dataset()
    staged = uploads(settings)
    body = ndjson([{"row_data": f"s3://b/{i}.jpg", "global_key": f"i{i}"} for i in range(3)])
    headers = {"Idempotency-Key": "retry-me-1"}
    first = tenant.post(f"/datasets/{ds['id']}/data-rows", content=body, headers=headers)
    assert first.status_code == 202
    assert first.json()["counts"]["created"] == 3
    again = tenant.post(f"/datasets/{ds['id']}/data-rows", content=body, headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert len(rows_of(tenant, ds["id"])) == 3
    assert [j["id"] for j in jobs_of(tenant)] == [first.json()["id"]]
    # Another organization's same key is its own.
    theirs = other_tenant.dataset()
    r = other_tenant.post(f"/datasets/{theirs['id']}/data-rows", content=body, headers=headers)
    assert r.status_code == 202
    assert r.json()["id"] != first.json()["id"]
    assert r.json()["counts"]["created"] == 3
    # A new key is a new job (whose rows now clash with the first ones).
    r = tenant.post(
        f"/datasets/{ds['id']}/data-rows", content=body, headers={"Idempotency-Key": "retry-2"}
    )
    assert r.json()["id"] != first.json()["id"]
    assert r.json()["counts"] == {"created": 0, "updated": 0, "failed": 3}
    assert uploads(settings) == staged, "finished or repeated imports leave files behind"


def test_an_over_long_idempotency_key_is_422(tenant: Tenant) -> None:
    ds = tenant.dataset()
    r = tenant.post(
        f"/datasets/{ds['id']}/data-rows",
        content=b'{"row_data": "s3://b/1.jpg"}',
        headers={"Idempotency-Key": "x" * 201},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"
    assert jobs_of(tenant) == []


# --- formats and whole-file problems -------------------------------------------------------


def test_json_array_csv_and_multipart_bodies(tenant: Tenant) -> None:
    ds = tenant.dataset()
    job = tenant.import_rows(
        ds["id"], orjson.dumps([{"row_data": "s3://b/j.jpg"}, "s3://b/bare.png"])
    )
    assert (job["format"], job["counts"]["created"]) == ("json/labelbox", 2)
    job = tenant.import_rows(
        ds["id"], "Data URL,External ID\ns3://b/c1.jpg,first\ns3://b/c2.wav,second\n"
    )
    assert job["format"].startswith("csv")
    assert job["counts"] == {"created": 2, "updated": 0, "failed": 0}
    r = tenant.post(
        f"/datasets/{ds['id']}/data-rows",
        files={"file": ("rows.txt", b"s3://b/t1.jpg\ns3://b/t2.mp4\n", "text/plain")},
    )
    assert r.status_code == 202, r.text
    assert r.json()["format"].startswith("txt")
    assert r.json()["counts"]["created"] == 2
    assert r.json()["options"]["filename"] == "rows.txt"
    rows = rows_of(tenant, ds["id"])
    assert [(r["row_data"], r["external_id"], r["media_type"]) for r in rows] == [
        ("s3://b/j.jpg", None, "IMAGE"),
        ("s3://b/bare.png", None, "IMAGE"),
        ("s3://b/c1.jpg", "first", "IMAGE"),
        ("s3://b/c2.wav", "second", "AUDIO"),
        ("s3://b/t1.jpg", None, "IMAGE"),
        ("s3://b/t2.mp4", None, "VIDEO"),
    ]


def test_format_and_media_type_parameters(tenant: Tenant) -> None:
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], "s3://b/a.bin\ns3://b/b.bin\n", media_type="video")
    assert job["counts"]["created"] == 2
    assert {r["media_type"] for r in rows_of(tenant, ds["id"])} == {"VIDEO"}
    for params, words in (
        ({"format": "xml"}, "unknown format 'xml'"),
        ({"media_type": "hologram"}, "unknown media_type 'hologram'"),
    ):
        r = tenant.post(f"/datasets/{ds['id']}/data-rows", content=b"s3://b/x.jpg", params=params)
        assert r.status_code == 422
        assert words in r.json()["error"]["message"]
    assert len(jobs_of(tenant)) == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"  \n\n \t", "empty"),
        (b'{"row_data": "s3://b/caf\xe9.jpg"}\n', "not UTF-8"),
        ("[]".encode("utf-16"), "UTF-16"),
    ],
)
def test_unreadable_bodies_are_422_and_make_no_job(
    tenant: Tenant, settings: Settings, body: bytes, words: str
) -> None:
    ds = tenant.dataset()
    staged = uploads(settings)
    r = tenant.post(f"/datasets/{ds['id']}/data-rows", content=body)
    assert uploads(settings) == staged, "the refused upload stays on disk"
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid"
    assert words in error["message"]
    if words == "not UTF-8":
        assert "0xe9" in error["message"] and "UTF-8" in error["message"]
    assert jobs_of(tenant) == []
    assert rows_of(tenant, ds["id"]) == []


def test_an_empty_json_array_completes_with_nothing(tenant: Tenant) -> None:
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], b"[]")
    assert job["status"] == "completed"
    assert job["counts"] == {"created": 0, "updated": 0, "failed": 0}
    assert job["progress"]["done"] == 0


def test_a_json_array_broken_midway_keeps_the_rows_before(tenant: Tenant) -> None:
    ds = tenant.dataset()
    body = b'[{"row_data": "s3://b/1.jpg"}, {"row_data": "s3://b/2.jpg"}, {"row_data": '
    job = tenant.import_rows(ds["id"], body)
    assert job["status"] == "completed_with_errors"
    assert job["counts"] == {"created": 2, "updated": 0, "failed": 1}
    [error] = tenant.errors(job["id"])
    assert error["index"] == 2
    assert error["code"] == "malformed_file"
    assert "after item 2" in error["message"]


def test_a_huge_integer_in_a_json_array_loses_only_its_row(tenant: Tenant) -> None:
    """yajl stops at integers beyond 64 bits; the file is read on with ijson's Python parser,
    so only the row holding one is refused, and a later break in the file is still told."""
    ds = tenant.dataset()
    huge = b"1" + b"0" * 30
    body = (
        b'[{"row_data": "s3://b/1.jpg"}, {"row_data": "s3://b/2.jpg", "media_attributes": '
        b'{"size": ' + huge + b'}}, {"row_data": "s3://b/3.jpg", "note": [' + huge + b"]}, "
        b'{"row_data": "s3://b/4.jpg"}, {"row_data": '
    )
    job = tenant.import_rows(ds["id"], body)
    assert job["counts"] == {"created": 2, "updated": 0, "failed": 3}
    assert [r["row_data"] for r in rows_of(tenant, ds["id"])] == ["s3://b/1.jpg", "s3://b/4.jpg"]
    errors = tenant.errors(job["id"])
    assert [(e["index"], e["code"]) for e in errors] == [
        (1, "invalid_value"),
        (2, "invalid_value"),
        (4, "malformed_file"),
    ]
    assert "cannot store" in errors[0]["message"]


def test_import_into_an_unknown_dataset_is_404(tenant: Tenant) -> None:
    r = tenant.post("/datasets/nowhere/data-rows", content=b"s3://b/1.jpg")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert jobs_of(tenant) == []


def test_jobs_answer_404_and_409_cleanly(tenant: Tenant) -> None:
    assert tenant.get("/jobs/0123456789abcdef").status_code == 404
    assert tenant.get("/jobs/0123456789abcdef/errors").status_code == 404
    ds = tenant.dataset()
    job = tenant.import_rows(ds["id"], b"s3://b/1.jpg\n")
    r = tenant.post(f"/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert "completed" in r.json()["error"]["message"]
    assert tenant.get(f"/jobs/{job['id']}").json()["status"] == "completed"


def test_jobs_list_newest_first(tenant: Tenant) -> None:
    ds = tenant.dataset()
    made = [tenant.import_rows(ds["id"], f"s3://b/{i}.jpg\n")["id"] for i in range(3)]
    assert [j["id"] for j in jobs_of(tenant)] == made[::-1]
    assert [j["id"] for j in tenant.get("/jobs", params={"limit": 2}).json()["items"]] == (
        made[::-1][:2]
    )


# --- request size limits -------------------------------------------------------------------


@pytest.fixture
def small_limits(settings: Settings, tenant: Tenant) -> Iterator[Tenant]:
    """The same tenant, talking to an app with tiny body limits."""
    from tether.api.app import create_app

    small = settings.model_copy(update={"max_json_bytes": 300, "max_upload_bytes": 400})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with TestClient(create_app(small, migrate=False)) as client:
        yield dataclasses.replace(tenant, http=client)


def test_an_oversized_json_body_is_413(small_limits: Tenant) -> None:
    tenant = small_limits
    big = {"name": "n", "description": "d" * 400}
    r = tenant.post("/datasets", json=big)
    assert r.status_code == 413
    assert r.json() == {
        "error": {
            "code": "too_large",
            "message": "request body is larger than the limit of 300 bytes",
            "details": None,
        }
    }

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "n", "description": "'
        for _ in range(10):
            yield b"d" * 50
        yield b'"}'

    r = tenant.post("/datasets", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large"
    assert tenant.get("/datasets").json() == {"items": []}
    r = tenant.post("/datasets", json={"name": "small", "description": "d" * 100})
    assert r.status_code == 201


def test_an_oversized_upload_is_413_and_creates_nothing(small_limits: Tenant) -> None:
    tenant = small_limits
    ds = tenant.dataset()
    rows = ndjson([{"row_data": f"s3://bucket/{i:04d}.jpg"} for i in range(20)])
    assert len(rows) > 400
    r = tenant.post(f"/datasets/{ds['id']}/data-rows", content=rows)
    assert r.status_code == 413
    assert r.json()["error"] == {
        "code": "too_large",
        "message": "the upload is larger than the limit of 400 bytes",
        "details": None,
    }
    r = tenant.post(
        f"/datasets/{ds['id']}/data-rows", files={"file": ("rows.ndjson", rows, "text/plain")}
    )
    assert r.status_code == 413
    assert jobs_of(tenant) == []
    assert rows_of(tenant, ds["id"]) == []
    # An upload over the JSON limit but under the upload limit is fine.
    small = ndjson([{"row_data": f"s3://bucket/{i:04d}.jpg"} for i in range(10)])
    assert 300 < len(small) <= 400
    job = tenant.import_rows(ds["id"], small)
    assert job["counts"]["created"] == 10


def test_an_oversized_multipart_upload_is_refused_before_it_is_read(
    small_limits: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form parser would spool any size of body to disk: the limit applies first."""
    from tether.api import uploads

    saved: list[int] = []
    real = uploads._save_body

    async def watching(request: Any, path: Any, limit: int) -> Any:
        saved.append(limit)
        return await real(request, path, limit)

    monkeypatch.setattr(uploads, "_save_body", watching)
    tenant = small_limits
    ds = tenant.dataset()
    big = b"s3://bucket/x.jpg\n" * 100
    r = tenant.post(f"/datasets/{ds['id']}/data-rows", files={"file": ("rows.txt", big)})
    assert r.status_code == 413
    assert r.json()["error"]["message"] == "the upload is larger than the limit of 400 bytes"
    assert saved == []
    r = tenant.post(f"/datasets/{ds['id']}/data-rows", files={"file": ("rows.txt", big[:180])})
    assert r.status_code == 202
    assert r.json()["counts"]["created"] == 10
    assert saved == [400]


def test_concurrent_retries_with_one_idempotency_key_make_one_job(tenant: Tenant) -> None:
    ds = tenant.dataset()
    body = ndjson([{"row_data": f"s3://b/{i}.jpg", "global_key": f"c{i}"} for i in range(5)])

    def attempt(_: int) -> Any:
        r = tenant.post(
            f"/datasets/{ds['id']}/data-rows", content=body, headers={"Idempotency-Key": "same"}
        )
        assert r.status_code == 202, r.text
        return r.json()["id"]

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(attempt, range(6)))
    assert len(ids) == 1
    [job] = jobs_of(tenant)
    assert job["id"] in ids
    assert job["counts"] == {"created": 5, "updated": 0, "failed": 0}
    assert len(rows_of(tenant, ds["id"])) == 5


def test_an_import_whose_dataset_was_deleted_says_so(
    tenant: Tenant, engine: Any, settings: Settings
) -> None:
    from tether.imports.runner import run_import
    from tether.jobs import service as jobs

    ds = tenant.dataset()
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    upload = settings.uploads_dir / f"orphan-{ds['id']}.upload"
    upload.write_bytes(ndjson([{"row_data": "s3://b/1.jpg", "global_key": "a"}, "s3://b/2.jpg"]))
    with engine.begin() as conn:
        job, _new = jobs.create(
            conn, tenant.org_id, "import", {"_upload": str(upload)}, ds["id"], None, tenant.user_id
        )
    assert tenant.delete(f"/datasets/{ds['id']}").status_code == 202
    run_import(engine, job["id"], settings.import_chunk_rows)
    done = tenant.get(f"/jobs/{job['id']}").json()
    errors = tenant.errors(job["id"])
    assert not [e for e in errors if e["code"] == "global_key_exists"], errors
    said = [done["message"] or ""] + [e["message"] for e in errors]
    assert any("dataset" in text for text in said), (done, errors)


def test_a_job_that_breaks_midway_fails_and_keeps_its_committed_chunks(
    tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tether.catalog import store

    real = store.write_rows
    calls: list[int] = []

    def second_chunk_breaks(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "write_rows", second_chunk_breaks)
    ds = tenant.dataset()
    size = settings.import_chunk_rows
    body = "".join(f"s3://b/{i}.jpg\n" for i in range(size * 2 + 5))
    r = tenant.post(f"/datasets/{ds['id']}/data-rows", content=body)
    assert r.status_code == 202
    job = r.json()
    assert job["status"] == "failed"
    assert job["message"] == "internal error: RuntimeError"
    assert job["counts"] == {"created": size, "updated": 0, "failed": 0}
    assert job["progress"] == {"done": size, "total": size * 2 + 5}
    assert job["finished_at"] is not None
    assert len(rows_of(tenant, ds["id"])) == size


def test_a_malformed_csv_row_says_its_line(tenant: Tenant) -> None:
    ds = tenant.dataset()
    body = "Data URL,External ID\ns3://b/1.jpg,one\ns3://b/2.jpg,two,extra\n\ns3://b/3.jpg,three\n"
    job = tenant.import_rows(ds["id"], body)
    assert job["counts"] == {"created": 2, "updated": 0, "failed": 1}
    [error] = tenant.errors(job["id"])
    assert error["index"] == 1
    assert error["message"].startswith("line 3:"), error
    assert [r["external_id"] for r in rows_of(tenant, ds["id"])] == ["one", "three"]
