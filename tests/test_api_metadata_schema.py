"""The metadata schema of an organization, through the in-process API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from tests.conftest import Tenant

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")

RESERVED = [
    {
        "id": "cko8s9r5v0001h2dk9elqdidh",
        "name": "tag",
        "kind": "string",
        "reserved": True,
        "options": None,
        "dimension": None,
    },
    {
        "id": "cko8sbczn0002h2dkdaxb5kal",
        "name": "split",
        "kind": "enum",
        "reserved": True,
        "options": [
            {"id": "cko8sbscr0003h2dk04w86hof", "name": "train"},
            {"id": "cko8sc2yr0004h2dk69aj5x63", "name": "valid"},
            {"id": "cko8scbz70005h2dkastwhgqt", "name": "test"},
        ],
        "dimension": None,
    },
    {
        "id": "cko8sdzv70006h2dk8jg64zvb",
        "name": "captureDateTime",
        "kind": "datetime",
        "reserved": True,
        "options": None,
        "dimension": None,
    },
    {
        "id": "ckpyije740000yxdk81pbgjdc",
        "name": "embedding",
        "kind": "embedding",
        "reserved": True,
        "options": None,
        "dimension": 128,
    },
]


def ndjson(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def fields(tenant: Tenant) -> list[dict[str, Any]]:
    r = tenant.get("/metadata-schema")
    assert r.status_code == 200
    return r.json()["fields"]  # type: ignore[no-any-return]


def create(tenant: Tenant, **body: Any) -> dict[str, Any]:
    r = tenant.post("/metadata-schema", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_reserved_fields_are_listed(tenant: Tenant) -> None:
    assert fields(tenant) == RESERVED
    for field in RESERVED:
        assert tenant.get(f"/metadata-schema/{field['name']}").json() == field
        assert tenant.get(f"/metadata-schema/{field['id']}").json() == field


def test_custom_fields_of_every_kind(tenant: Tenant, other_tenant: Tenant) -> None:
    made = [
        create(tenant, name="note", kind="string"),
        create(tenant, name="score", kind="number"),
        create(tenant, name="shot_at", kind="datetime"),
        create(tenant, name="weather", kind="enum", options=["sunny", " rain "]),
        create(tenant, name="clip", kind="embedding", dimension=3),
    ]
    assert [(f["name"], f["kind"], f["reserved"]) for f in made] == [
        ("note", "string", False),
        ("score", "number", False),
        ("shot_at", "datetime", False),
        ("weather", "enum", False),
        ("clip", "embedding", False),
    ]
    assert len({f["id"] for f in made}) == 5
    assert not {f["id"] for f in made} & {f["id"] for f in RESERVED}
    assert [o["name"] for o in made[3]["options"]] == ["sunny", "rain"]
    assert made[4]["dimension"] == 3
    assert made[0]["options"] is None and made[0]["dimension"] is None
    listed = fields(tenant)
    assert listed[:4] == RESERVED
    assert sorted(listed[4:], key=lambda f: f["name"]) == sorted(made, key=lambda f: f["name"])
    for f in made:
        assert tenant.get(f"/metadata-schema/{f['id']}").json() == f
        assert tenant.get(f"/metadata-schema/{f['name']}").json() == f
        assert other_tenant.get(f"/metadata-schema/{f['id']}").status_code == 404
    assert fields(other_tenant) == RESERVED
    # The same name is free in another organization.
    theirs = create(other_tenant, name="score", kind="string")
    assert theirs["id"] != made[1]["id"]
    assert tenant.get("/metadata-schema/score").json()["kind"] == "number"


BAD_DEFINITIONS: list[tuple[dict[str, Any], int, str]] = [
    ({"name": "x", "kind": "boolean"}, 422, "unknown kind 'boolean'"),
    ({"name": "x", "kind": "enum"}, 422, "at least one option"),
    ({"name": "x", "kind": "enum", "options": ["a", "a"]}, 422, "distinct"),
    ({"name": "x", "kind": "embedding"}, 422, "dimension"),
    ({"name": "x", "kind": "embedding", "dimension": 0}, 422, "dimension"),
    ({"name": "x", "kind": "embedding", "dimension": 4097}, 422, "dimension"),
    ({"name": "  ", "kind": "string"}, 422, "name"),
    ({"name": "x" * 201, "kind": "string"}, 422, "name"),
    ({"kind": "string"}, 422, "name"),
    ({"name": "x", "kind": "string", "colour": 1}, 422, "colour"),
    ({"name": "split", "kind": "string"}, 409, "'split' is a reserved field"),
    ({"name": "tag", "kind": "enum", "options": ["a"]}, 409, "reserved"),
]


def test_bad_field_definitions(tenant: Tenant) -> None:
    for body, status, words in BAD_DEFINITIONS:
        r = tenant.post("/metadata-schema", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == ("invalid" if status == 422 else "conflict")
        assert words in r.json()["error"]["message"], (body, r.json())
    assert fields(tenant) == RESERVED


def test_duplicate_name_is_409(tenant: Tenant) -> None:
    first = create(tenant, name="score", kind="number")
    for kind in ("number", "string"):
        r = tenant.post("/metadata-schema", json={"name": "score", "kind": kind})
        assert r.status_code == 409
        assert r.json()["error"] == {
            "code": "conflict",
            "message": "a metadata field named 'score' exists already",
            "details": None,
        }
    assert fields(tenant)[4:] == [first]


def test_enum_options_can_be_added(tenant: Tenant) -> None:
    weather = create(tenant, name="weather", kind="enum", options=["sunny"])
    ds = tenant.dataset()
    row = {"row_data": "s3://b/1.jpg", "metadata_fields": [{"name": "weather", "value": "fog"}]}
    job = tenant.import_rows(ds["id"], ndjson([row]))
    [error] = tenant.errors(job["id"])
    assert "'weather'" in error["message"] and "'fog' is not one of: sunny" in error["message"]
    r = tenant.patch("/metadata-schema/weather", json={"add_options": ["fog", "sunny", "snow"]})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["options"][0] == weather["options"][0]
    assert [o["name"] for o in updated["options"]] == ["sunny", "fog", "snow"]
    assert updated["id"] == weather["id"]
    job = tenant.import_rows(ds["id"], ndjson([row]))
    assert job["counts"]["created"] == 1
    # An option can be given by its id too; it is stored as its name.
    fog_id = updated["options"][1]["id"]
    by_id = {"row_data": "s3://b/2.jpg", "metadata_fields": [{"name": "weather", "value": fog_id}]}
    job = tenant.import_rows(ds["id"], ndjson([by_id]))
    assert job["counts"]["created"] == 1
    listed = tenant.get("/data-rows", params={"metadata": "weather:eq:fog"}).json()["items"]
    assert [r["metadata_fields"][0]["value"] for r in listed] == ["fog", "fog"]


def test_field_changes_that_are_refused(tenant: Tenant) -> None:
    create(tenant, name="score", kind="number")
    create(tenant, name="note", kind="string")
    cases = [
        ("score", {"add_options": ["a"]}, 422, "only enum fields have options"),
        ("score", {"name": "note"}, 409, "exists already"),
        ("score", {"name": "tag"}, 409, "exists already"),
        ("split", {"add_options": ["holdout"]}, 409, "reserved"),
        ("tag", {"name": "label"}, 409, "reserved"),
        ("nosuch", {"name": "x"}, 404, "no metadata field 'nosuch'"),
    ]
    for field, body, status, words in cases:
        r = tenant.patch(f"/metadata-schema/{field}", json=body)
        assert r.status_code == status, (field, body, r.text)
        assert words in r.json()["error"]["message"]
    assert fields(tenant)[:4] == RESERVED
    assert [f["name"] for f in fields(tenant)[4:]] == ["note", "score"]


def test_rename_keeps_values_filterable(tenant: Tenant) -> None:
    score = create(tenant, name="score", kind="number")
    ds = tenant.dataset()
    row = {"row_data": "s3://b/1.jpg", "metadata_fields": [{"name": "score", "value": 4}]}
    tenant.import_rows(ds["id"], ndjson([row]))
    r = tenant.patch("/metadata-schema/score", json={"name": "quality"})
    assert r.status_code == 200
    assert r.json()["id"] == score["id"] and r.json()["name"] == "quality"
    assert tenant.get("/metadata-schema/score").status_code == 404
    listed = tenant.get("/data-rows", params={"metadata": "quality:gte:4"}).json()["items"]
    assert len(listed) == 1
    r = tenant.get("/data-rows", params={"metadata": "score:gte:4"})
    assert r.status_code == 422


def test_rows_show_a_renamed_fields_new_name(tenant: Tenant) -> None:
    create(tenant, name="score", kind="number")
    ds = tenant.dataset()
    row = {"row_data": "s3://b/1.jpg", "metadata_fields": [{"name": "score", "value": 4}]}
    tenant.import_rows(ds["id"], ndjson([row]))
    tenant.patch("/metadata-schema/score", json={"name": "quality"})
    [listed] = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    assert [m["name"] for m in listed["metadata_fields"]] == ["quality"]


def test_delete_is_refused_while_rows_use_the_field(tenant: Tenant) -> None:
    create(tenant, name="score", kind="number")
    unused = create(tenant, name="unused", kind="string")
    ds = tenant.dataset()
    rows = [
        {"row_data": f"s3://b/{i}.jpg", "metadata_fields": [{"name": "score", "value": i}]}
        for i in range(2)
    ]
    tenant.import_rows(ds["id"], ndjson(rows))
    r = tenant.delete("/metadata-schema/score")
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "conflict",
        "message": "2 data rows still use 'score'; clear it from them first",
        "details": {"rows": 2},
    }
    assert tenant.get("/metadata-schema/score").status_code == 200
    for field in ("tag", "split", RESERVED[3]["id"]):
        r = tenant.delete(f"/metadata-schema/{field}")
        assert r.status_code == 409
        assert "reserved" in r.json()["error"]["message"]
    assert tenant.delete(f"/metadata-schema/{unused['id']}").status_code == 204
    assert tenant.get("/metadata-schema/unused").status_code == 404
    # Clear it from the rows, then it goes.
    for row in tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]:
        r = tenant.patch(f"/data-rows/{row['id']}", json={"metadata_fields": []})
        assert r.status_code == 200 and r.json()["metadata_fields"] == []
    r = tenant.delete("/metadata-schema/score")
    assert r.status_code == 204
    assert fields(tenant) == RESERVED
    assert tenant.delete("/metadata-schema/score").status_code == 404


def test_deleting_the_dataset_frees_the_field(tenant: Tenant) -> None:
    create(tenant, name="score", kind="number")
    ds = tenant.dataset()
    row = {"row_data": "s3://b/1.jpg", "metadata_fields": [{"name": "score", "value": 1}]}
    tenant.import_rows(ds["id"], ndjson([row]))
    assert tenant.delete("/metadata-schema/score").status_code == 409
    assert tenant.delete(f"/datasets/{ds['id']}").status_code == 202
    assert tenant.delete("/metadata-schema/score").status_code == 204


def test_another_organizations_field_cannot_be_changed(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = create(other_tenant, name="weather", kind="enum", options=["sunny"])
    assert tenant.patch(f"/metadata-schema/{theirs['id']}", json={"name": "x"}).status_code == 404
    assert tenant.delete(f"/metadata-schema/{theirs['id']}").status_code == 404
    assert other_tenant.get(f"/metadata-schema/{theirs['id']}").json() == theirs
    # Their field's id means nothing in a row of this organization.
    ds = tenant.dataset()
    row = {
        "row_data": "s3://b/1.jpg",
        "metadata_fields": [{"schema_id": theirs["id"], "value": "sunny"}],
    }
    job = tenant.import_rows(ds["id"], ndjson([row]))
    [error] = tenant.errors(job["id"])
    assert error["code"] == "invalid_metadata"
    assert theirs["id"] in error["message"]


def test_rows_validate_against_the_schema(tenant: Tenant) -> None:
    clip = create(tenant, name="clip", kind="embedding", dimension=3)
    create(tenant, name="score", kind="number")
    create(tenant, name="shot_at", kind="datetime")
    ds = tenant.dataset()
    good = {
        "row_data": "s3://b/good.jpg",
        "metadata_fields": [
            {"schema_id": clip["id"], "value": [0.5, 1, "2.5"]},
            {"name": "score", "value": "7"},
            {"name": "shot_at", "value": "2024-05-01T12:00:00"},
            {"name": "embedding", "value": [0.0] * 128},
            {"name": "tag", "value": 12},
        ],
    }
    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": "clip", "value": [1, 2]}, "'clip': expected 3 numbers, got 2"),
        ({"name": "clip", "value": "1,2,3"}, "'clip': expected a list of numbers"),
        ({"name": "score", "value": "seven"}, "'score': 'seven' is not a number"),
        ({"name": "score", "value": True}, "'score': expected a number, got a boolean"),
        ({"name": "shot_at", "value": "May 1st"}, "'shot_at': 'May 1st' is not ISO 8601"),
        ({"name": "embedding", "value": [1.0] * 127}, "'embedding': expected 128 numbers"),
        ({"name": "tag", "value": ["a"]}, "'tag': expected a string, got a list"),
        ({"name": "split", "value": "Train"}, "'split': 'Train' is not one of"),
        ({"value": "x"}, "unknown metadata field None"),
        ({"name": "score"}, "needs a name or schema_id and a value"),
    ]
    rows = [good] + [
        {"row_data": f"s3://b/bad{i}.jpg", "metadata_fields": [entry]}
        for i, (entry, _words) in enumerate(bad)
    ]
    rows.append(
        {
            "row_data": "s3://b/twice.jpg",
            "metadata_fields": [{"name": "score", "value": 1}, {"name": "score", "value": 2}],
        }
    )
    job = tenant.import_rows(ds["id"], ndjson(rows))
    assert job["counts"] == {"created": 1, "updated": 0, "failed": len(bad) + 1}
    errors = tenant.errors(job["id"])
    assert [e["index"] for e in errors] == list(range(1, len(bad) + 2))
    for error, (_entry, words) in zip(errors, bad, strict=False):
        assert error["code"] == "invalid_metadata"
        assert words in error["message"], (words, error["message"])
    assert "'score' is given twice" in errors[-1]["message"]
    [row] = tenant.get("/data-rows", params={"dataset_id": ds["id"]}).json()["items"]
    assert [(m["name"], m["value"]) for m in row["metadata_fields"]] == [
        ("clip", [0.5, 1.0, 2.5]),
        ("score", 7),
        ("shot_at", "2024-05-01T12:00:00Z"),
        ("embedding", [0.0] * 128),
        ("tag", "12"),
    ]
    assert row["metadata_fields"][0]["schema_id"] == clip["id"]


def test_concurrent_creates_of_one_name_make_one_field(tenant: Tenant) -> None:
    def attempt(name: str) -> int:
        return int(
            tenant.post("/metadata-schema", json={"name": name, "kind": "string"}).status_code
        )

    for round_ in range(3):
        with ThreadPoolExecutor(6) as pool:
            codes = sorted(pool.map(attempt, [f"race-{round_}"] * 6))
        assert codes == [201, 409, 409, 409, 409, 409], codes
    assert [f["name"] for f in fields(tenant)[4:]] == ["race-0", "race-1", "race-2"]
