"""Data rows through the in-process API: get, lookup, list (pagination and filters), update,
delete, global key assignment. Every filter is checked against a plain Python filter over the
same rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from tests.conftest import Tenant, make_tenant

Row = dict[str, Any]


def ndjson(rows: list[Row]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def list_all(tenant: Tenant, limit: int = 1000, **params: Any) -> list[Row]:
    """Every row the list route returns for these filters, following the cursor."""
    out: list[Row] = []
    after = None
    for _ in range(1000):
        query = {**params, "limit": limit}
        if after is not None:
            query["after"] = after
        r = tenant.get("/data-rows", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        out.extend(page["items"])
        after = page["next_cursor"]
        if after is None:
            return out
        assert page["items"], "a page with a next cursor must not be empty"
    raise AssertionError("pagination does not end")


def meta(row: Row, name: str) -> Any:
    return next((m["value"] for m in row["metadata_fields"] if m["name"] == name), None)


def make_fields(tenant: Tenant) -> None:
    for body in (
        {"name": "score", "kind": "number"},
        {"name": "note", "kind": "string"},
        {"name": "shot_at", "kind": "datetime"},
        {"name": "weather", "kind": "enum", "options": ["sunny", "rain"]},
    ):
        r = tenant.post("/metadata-schema", json=body)
        assert r.status_code == 201, r.text


TAGS = ["Sunny day", "sunny", "night rain", "100% sure", "snow_a", "snowXa"]
EXTENSIONS = ["jpg", "mp4", "wav", "png"]


def sample_rows(prefix: str, count: int = 18) -> list[Row]:
    """Rows with a spread of keys, media types and metadata (some fields missing)."""
    rows = []
    base = datetime(2024, 3, 1, tzinfo=UTC)
    for i in range(count):
        fields: list[Row] = [{"name": "split", "value": ["train", "valid", "test"][i % 3]}]
        if i % 4 != 3:
            fields.append({"name": "tag", "value": TAGS[i % len(TAGS)]})
        if i % 5 != 4:
            moment = base + timedelta(days=i * 3, hours=i)
            fields.append({"name": "captureDateTime", "value": moment.isoformat()})
        if i % 3 != 2:
            fields.append({"name": "score", "value": (i * 7 % 11) - 3.5})
        if i % 2 == 0:
            fields.append({"name": "weather", "value": "sunny" if i % 4 == 0 else "rain"})
        if i % 6 == 1:
            fields.append({"name": "note", "value": f"note {i}"})
        row: Row = {
            "row_data": f"s3://bucket/{prefix}/{i}.{EXTENSIONS[i % len(EXTENSIONS)]}",
            "external_id": f"ext-{i % 4}",
            "metadata_fields": fields,
        }
        if i % 7 != 6:
            row["global_key"] = f"{prefix}-{'a' if i % 2 else 'b'}-{i:03d}"
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def catalog(engine: Engine, http: Any) -> dict[str, Any]:
    """Two datasets of one organization (rows with metadata), plus look-alike rows in another
    organization that must never show. Built once per module and database: tests using it
    only read."""
    tenant, other = make_tenant(engine, http), make_tenant(engine, http)
    make_fields(tenant)
    make_fields(other)
    first, second = tenant.dataset(), tenant.dataset()
    job = tenant.import_rows(first["id"], ndjson(sample_rows("p")))
    assert job["counts"] == {"created": 18, "updated": 0, "failed": 0}, tenant.errors(job["id"])
    job = tenant.import_rows(second["id"], ndjson(sample_rows("q", 6)))
    assert job["counts"]["created"] == 6
    theirs = other.dataset(first["name"])
    job = other.import_rows(theirs["id"], ndjson(sample_rows("p")))
    assert job["counts"]["created"] == 18
    rows = list_all(tenant)
    assert len(rows) == 24
    return {
        "tenant": tenant,
        "other": other,
        "first": first,
        "second": second,
        "rows": rows,
        "theirs": theirs,
    }


# --- get and lookup -----------------------------------------------------------------------


def test_get_by_id_returns_every_field(tenant: Tenant) -> None:
    ds = tenant.dataset()
    row = {
        "row_data": "s3://bucket/a/1.JPG",
        "global_key": "gk-1",
        "external_id": "ext-1",
        "media_attributes": {"width": 640, "height": 480, "mimeType": "image/jpeg"},
        "metadata_fields": [
            {"name": "tag", "value": "dusk"},
            {"name": "split", "value": "valid"},
            {"name": "captureDateTime", "value": "2024-05-01T12:00:00+02:00"},
        ],
        "attachments": [{"type": "raw_text", "value": "camera 3", "name": "note"}],
    }
    tenant.import_rows(ds["id"], ndjson([row]))
    [listed] = list_all(tenant, dataset_id=ds["id"])
    got = tenant.get(f"/data-rows/{listed['id']}").json()
    assert got == listed
    assert got["dataset_id"] == ds["id"]
    assert got["row_data"] == "s3://bucket/a/1.JPG"
    assert got["media_type"] == "IMAGE"
    assert got["global_key"] == "gk-1"
    assert got["external_id"] == "ext-1"
    assert got["media_attributes"] == {"width": 640, "height": 480, "mimeType": "image/jpeg"}
    assert [(m["name"], m["value"]) for m in got["metadata_fields"]] == [
        ("tag", "dusk"),
        ("split", "valid"),
        ("captureDateTime", "2024-05-01T10:00:00Z"),
    ]
    assert all(m["schema_id"] for m in got["metadata_fields"])
    assert got["attachments"] == [{"type": "RAW_TEXT", "value": "camera 3", "name": "note"}]
    assert got["created_by"] == tenant.user_id
    assert got["created_at"] and got["updated_at"]


def test_get_unknown_row_is_404(tenant: Tenant) -> None:
    r = tenant.get("/data-rows/987654321")
    assert r.status_code == 404
    assert r.json() == {
        "error": {"code": "not_found", "message": "no data row 987654321", "details": None}
    }


def test_lookup_keeps_order_and_reports_missing(tenant: Tenant, other_tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(
        ds["id"],
        ndjson([{"row_data": f"s3://b/{k}.jpg", "global_key": k} for k in ("k1", "k2", "k3")]),
    )
    theirs = other_tenant.dataset()
    other_tenant.import_rows(
        theirs["id"], ndjson([{"row_data": "s3://b/x.jpg", "global_key": "x9"}])
    )
    ids = {r["global_key"]: r["id"] for r in list_all(tenant, dataset_id=ds["id"])}
    keys = ["k3", "missing", "k1", "x9", "k3", "k2"]
    r = tenant.post("/data-rows/lookup", json={"global_keys": keys})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [
        {"global_key": "k3", "data_row_id": ids["k3"]},
        {"global_key": "missing", "data_row_id": None},
        {"global_key": "k1", "data_row_id": ids["k1"]},
        {"global_key": "x9", "data_row_id": None},
        {"global_key": "k3", "data_row_id": ids["k3"]},
        {"global_key": "k2", "data_row_id": ids["k2"]},
    ]
    assert tenant.post("/data-rows/lookup", json={"global_keys": []}).json() == {"results": []}


def test_lookup_refuses_a_bad_body(tenant: Tenant) -> None:
    r = tenant.post("/data-rows/lookup", json={"global_keys": "k1"})
    assert r.status_code == 422
    r = tenant.post("/data-rows/lookup", json={"global_keys": ["x"] * 10_001})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"


# --- list: pagination and filters ----------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 4, 7])
def test_pages_neither_skip_nor_repeat(catalog: dict[str, Any], limit: int) -> None:
    tenant = catalog["tenant"]
    everything = catalog["rows"]
    paged = list_all(tenant, limit=limit)
    assert [r["id"] for r in paged] == [r["id"] for r in everything]
    assert len({r["id"] for r in paged}) == len(paged)
    assert [r["id"] for r in paged] == sorted(r["id"] for r in paged)
    first = catalog["first"]["id"]
    in_first = list_all(tenant, limit=limit, dataset_id=first, metadata=["split:eq:train"])
    assert [r["id"] for r in in_first] == [
        r["id"] for r in everything if r["dataset_id"] == first and meta(r, "split") == "train"
    ]


def test_next_cursor_is_null_on_the_last_page(catalog: dict[str, Any]) -> None:
    tenant = catalog["tenant"]
    r = tenant.get("/data-rows", params={"limit": 24}).json()
    assert len(r["items"]) == 24
    assert r["next_cursor"] is None
    r = tenant.get("/data-rows", params={"limit": 23}).json()
    assert r["next_cursor"] == r["items"][-1]["id"]
    last = tenant.get("/data-rows", params={"limit": 23, "after": r["next_cursor"]}).json()
    assert [x["id"] for x in last["items"]] == [catalog["rows"][-1]["id"]]
    assert last["next_cursor"] is None


def test_list_never_shows_another_organization(catalog: dict[str, Any]) -> None:
    tenant, other_tenant = catalog["tenant"], catalog["other"]
    mine = {r["id"] for r in catalog["rows"]}
    theirs = list_all(other_tenant)
    assert len(theirs) == 18
    assert not mine & {r["id"] for r in theirs}
    # Filtering by their dataset or their keys shows nothing.
    assert list_all(tenant, dataset_id=catalog["theirs"]["id"]) == []
    assert list_all(tenant, global_key_prefix="p-", dataset_id=catalog["second"]["id"]) == []
    assert {r["id"] for r in list_all(tenant, global_key_prefix="p-")} <= mine


def _python_filters(catalog: dict[str, Any]) -> list[tuple[dict[str, Any], Callable[[Row], bool]]]:
    first, second = catalog["first"]["id"], catalog["second"]["id"]

    def num(row: Row, name: str) -> float | None:
        value = meta(row, name)
        return None if value is None else float(value)

    def when(row: Row) -> datetime | None:
        value = meta(row, "captureDateTime")
        return None if value is None else datetime.fromisoformat(value)

    cut = datetime(2024, 3, 20, tzinfo=UTC)
    return [
        ({"dataset_id": first}, lambda r: r["dataset_id"] == first),
        ({"dataset_id": second}, lambda r: r["dataset_id"] == second),
        ({"media_type": "VIDEO"}, lambda r: r["media_type"] == "VIDEO"),
        ({"media_type": "audio"}, lambda r: r["media_type"] == "AUDIO"),
        ({"external_id": "ext-2"}, lambda r: r["external_id"] == "ext-2"),
        ({"global_key": "p-a-005"}, lambda r: r["global_key"] == "p-a-005"),
        ({"global_key_prefix": "p-a-"}, lambda r: (r["global_key"] or "").startswith("p-a-")),
        ({"global_key_prefix": "q"}, lambda r: (r["global_key"] or "").startswith("q")),
        ({"metadata": ["split:eq:valid"]}, lambda r: meta(r, "split") == "valid"),
        ({"metadata": ["weather:eq:rain"]}, lambda r: meta(r, "weather") == "rain"),
        ({"metadata": ["tag:eq:sunny"]}, lambda r: meta(r, "tag") == "sunny"),
        ({"metadata": ["note:eq:note 7"]}, lambda r: meta(r, "note") == "note 7"),
        ({"metadata": ["score:eq:0.5"]}, lambda r: num(r, "score") == 0.5),
        ({"metadata": ["score:gt:0.5"]}, lambda r: (num(r, "score") or -99) > 0.5),
        ({"metadata": ["score:gte:0.5"]}, lambda r: (num(r, "score") or -99) >= 0.5),
        ({"metadata": ["score:lt:-1"]}, lambda r: (num(r, "score") or 99) < -1),
        ({"metadata": ["score:lte:-2.5"]}, lambda r: (num(r, "score") or 99) <= -2.5),
        (
            {"metadata": ["score:gte:-1", "score:lt:3"]},
            lambda r: num(r, "score") is not None and -1 <= num(r, "score") < 3,  # type: ignore[operator]
        ),
        (
            {"metadata": ["captureDateTime:gte:2024-03-20T00:00:00Z"]},
            lambda r: (when(r) or datetime.min.replace(tzinfo=UTC)) >= cut,
        ),
        (
            {"metadata": ["captureDateTime:lt:2024-03-20T02:00:00+02:00"]},
            lambda r: when(r) is not None and when(r) < cut,  # type: ignore[operator]
        ),
        ({"tag_contains": "unny"}, lambda r: "unny" in (meta(r, "tag") or "")),
        ({"tag_contains": "%"}, lambda r: "%" in (meta(r, "tag") or "")),
        ({"tag_contains": "_a"}, lambda r: "_a" in (meta(r, "tag") or "")),
        ({"metadata": ["tag:contains:rain"]}, lambda r: "rain" in (meta(r, "tag") or "")),
        (
            {"dataset_id": first, "media_type": "IMAGE", "metadata": ["split:eq:train"]},
            lambda r: (
                r["dataset_id"] == first
                and r["media_type"] == "IMAGE"
                and meta(r, "split") == "train"
            ),
        ),
        (
            {"metadata": ["weather:eq:sunny", "score:gt:0"], "global_key_prefix": "p-b"},
            lambda r: (
                meta(r, "weather") == "sunny"
                and (num(r, "score") or -1) > 0
                and (r["global_key"] or "").startswith("p-b")
            ),
        ),
    ]


def test_filters_match_a_plain_python_filter(catalog: dict[str, Any]) -> None:
    tenant = catalog["tenant"]
    rows = catalog["rows"]
    checked = 0
    for params, keep in _python_filters(catalog):
        expected = [r["id"] for r in rows if keep(r)]
        got = [r["id"] for r in list_all(tenant, limit=5, **params)]
        assert got == expected, params
        assert 0 < len(expected) < len(rows), f"{params} does not discriminate"
        checked += 1
    assert checked == len(_python_filters(catalog))


def test_tag_contains_is_case_sensitive(
    catalog: dict[str, Any], backend: str, request: pytest.FixtureRequest
) -> None:
    """'contains' matches exactly as Python's ``in`` does, on both databases."""
    tenant = catalog["tenant"]
    rows = catalog["rows"]
    got = [r["id"] for r in list_all(tenant, tag_contains="Sunny")]
    assert got == [r["id"] for r in rows if "Sunny" in (meta(r, "tag") or "")]
    assert len(got) == 4


def test_filters_with_no_match_return_an_empty_page(catalog: dict[str, Any]) -> None:
    tenant = catalog["tenant"]
    for params in (
        {"tag_contains": "no such text"},
        {"metadata": ["score:gt:1000"]},
        {"external_id": "ext-99"},
        {"global_key": "p-a-001-nope"},
        {"media_type": "PDF"},
    ):
        r = tenant.get("/data-rows", params=params)
        assert r.status_code == 200
        assert r.json() == {"items": [], "next_cursor": None}, params


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("split", "FIELD:OP:VALUE"),
        ("nosuch:eq:1", "unknown metadata field 'nosuch'"),
        ("score:like:1", "unknown filter 'like'"),
        ("score:gt:abc", "'abc' is not a number"),
        ("split:gt:train", "'gt' needs a number or datetime field"),
        ("split:eq:holdout", "'holdout' is not one of"),
        ("score:contains:1", "'contains' works on string fields"),
        ("captureDateTime:gte:yesterday", "not ISO 8601"),
        ("embedding:eq:1", "embedding fields cannot be filtered on"),
    ],
)
def test_bad_metadata_filters_are_422(catalog: dict[str, Any], spec: str, words: str) -> None:
    r = catalog["tenant"].get("/data-rows", params={"metadata": spec})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid"
    assert words in r.json()["error"]["message"]


def test_created_range(tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(ds["id"], ndjson([{"row_data": f"s3://b/old{i}.jpg"} for i in range(3)]))
    old = list_all(tenant, dataset_id=ds["id"])
    time.sleep(0.05)
    tenant.import_rows(ds["id"], ndjson([{"row_data": f"s3://b/new{i}.jpg"} for i in range(2)]))
    rows = list_all(tenant, dataset_id=ds["id"])
    new = rows[3:]
    stamp = datetime.fromisoformat(new[0]["created_at"])
    assert stamp > datetime.fromisoformat(old[-1]["created_at"])
    ids = [r["id"] for r in rows]
    for moment in (stamp, stamp.astimezone(timezone(timedelta(hours=5, minutes=30)))):
        after = list_all(tenant, dataset_id=ds["id"], created_after=moment.isoformat())
        before = list_all(tenant, dataset_id=ds["id"], created_before=moment.isoformat())
        assert [r["id"] for r in after] == ids[3:], moment
        assert [r["id"] for r in before] == ids[:3], moment
    # A naive datetime means UTC.
    naive = stamp.astimezone(UTC).replace(tzinfo=None).isoformat()
    assert [r["id"] for r in list_all(tenant, dataset_id=ds["id"], created_after=naive)] == ids[3:]
    everything = list_all(
        tenant,
        dataset_id=ds["id"],
        created_after=(stamp - timedelta(days=1)).isoformat(),
        created_before=(stamp + timedelta(days=1)).isoformat(),
    )
    assert [r["id"] for r in everything] == ids
    r = tenant.get("/data-rows", params={"created_after": "last tuesday"})
    assert r.status_code == 422
    assert "created_after" in r.json()["error"]["message"]


def test_count_matches_the_list(catalog: dict[str, Any]) -> None:
    tenant = catalog["tenant"]
    for params, keep in _python_filters(catalog)[:12]:
        r = tenant.get("/data-rows/count", params=params)
        assert r.status_code == 200, r.text
        assert r.json() == {"count": sum(1 for x in catalog["rows"] if keep(x)), "exact": True}


# --- update -----------------------------------------------------------------------------


def _one_row(tenant: Tenant, **fields: Any) -> Row:
    ds = tenant.dataset()
    row = {"row_data": "s3://b/one.jpg", **fields}
    job = tenant.import_rows(ds["id"], ndjson([row]))
    assert job["counts"]["created"] == 1, tenant.errors(job["id"])
    [got] = list_all(tenant, dataset_id=ds["id"])
    return got


def test_patch_changes_the_given_fields_only(tenant: Tenant) -> None:
    make_fields(tenant)
    row = _one_row(
        tenant,
        global_key="patch-me",
        external_id="old",
        metadata_fields=[{"name": "split", "value": "train"}],
        attachments=[{"type": "TEXT", "value": "hello"}],
    )
    time.sleep(0.002)
    r = tenant.patch(
        f"/data-rows/{row['id']}",
        json={
            "external_id": "new",
            "metadata_fields": [
                {"name": "split", "value": "test"},
                {"name": "score", "value": "4.25"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["external_id"] == "new"
    assert [(m["name"], m["value"]) for m in got["metadata_fields"]] == [
        ("split", "test"),
        ("score", 4.25),
    ]
    assert got["global_key"] == "patch-me"
    assert got["row_data"] == row["row_data"]
    assert got["attachments"] == row["attachments"]
    assert got["created_at"] == row["created_at"]
    assert got["updated_at"] > row["updated_at"]
    assert tenant.get(f"/data-rows/{row['id']}").json() == got
    # The metadata index follows the update.
    assert [x["id"] for x in list_all(tenant, metadata=["split:eq:test"])] == [row["id"]]
    assert list_all(tenant, metadata=["split:eq:train"]) == []
    assert [x["id"] for x in list_all(tenant, metadata=["score:gt:4"])] == [row["id"]]


def test_patch_row_data_infers_the_media_type_again(tenant: Tenant) -> None:
    row = _one_row(tenant)
    assert row["media_type"] == "IMAGE"
    got = tenant.patch(f"/data-rows/{row['id']}", json={"row_data": "s3://b/clip.mp4"}).json()
    assert (got["row_data"], got["media_type"]) == ("s3://b/clip.mp4", "VIDEO")
    got = tenant.patch(f"/data-rows/{row['id']}", json={"media_type": "audio"}).json()
    assert got["media_type"] == "AUDIO"


BAD_CHANGES: list[tuple[dict[str, Any], str]] = [
    ({"metadata_fields": [{"name": "split", "value": "holdout"}]}, "split"),
    ({"metadata_fields": [{"name": "nosuch", "value": 1}]}, "nosuch"),
    ({"metadata_fields": [{"name": "captureDateTime", "value": "soon"}]}, "captureDateTime"),
    ({"metadata_fields": [{"name": "tag", "value": {"a": 1}}]}, "tag"),
    ({"media_type": "HOLOGRAM"}, "HOLOGRAM"),
    ({"row_data": ""}, "row_data"),
    ({"global_key": "k" * 201}, "global_key"),
    ({"attachments": [{"type": "SMELL", "value": "x"}]}, "SMELL"),
    ({"media_attributes": {"width": "wide"}}, "width"),
]


def test_patch_with_a_bad_value_changes_nothing(tenant: Tenant) -> None:
    row = _one_row(tenant, global_key="stay", metadata_fields=[{"name": "split", "value": "train"}])
    for change, words in BAD_CHANGES:
        r = tenant.patch(f"/data-rows/{row['id']}", json=change)
        assert r.status_code == 422, (change, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid"
        assert words in error["message"], (change, error)
        assert tenant.get(f"/data-rows/{row['id']}").json() == row
    assert [x["id"] for x in list_all(tenant, metadata=["split:eq:train"])] == [row["id"]]


def test_patch_refuses_unknown_fields_and_wrong_types(tenant: Tenant) -> None:
    row = _one_row(tenant)
    for body in ({"colour": "red"}, {"row_data": 5}, {"metadata_fields": "split=train"}):
        r = tenant.patch(f"/data-rows/{row['id']}", json=body)
        assert r.status_code == 422, body
    assert tenant.get(f"/data-rows/{row['id']}").json() == row


def test_patch_to_a_taken_global_key_fails(tenant: Tenant) -> None:
    first = _one_row(tenant, global_key="taken")
    second = _one_row(tenant, global_key="mine")
    r = tenant.patch(f"/data-rows/{second['id']}", json={"global_key": "taken"})
    assert r.status_code == 409
    assert r.json()["error"] == {
        "code": "global_key_exists",
        "message": "global key 'taken' belongs to another data row",
        "details": {"global_key": "taken"},
    }
    assert tenant.get(f"/data-rows/{second['id']}").json() == second
    assert tenant.get(f"/data-rows/{first['id']}").json()["global_key"] == "taken"


def test_patch_clears_a_global_key(tenant: Tenant) -> None:
    row = _one_row(tenant, global_key="to-free")
    got = tenant.patch(f"/data-rows/{row['id']}", json={"global_key": None}).json()
    assert got["global_key"] is None
    lookup = tenant.post("/data-rows/lookup", json={"global_keys": ["to-free"]}).json()
    assert lookup["results"] == [{"global_key": "to-free", "data_row_id": None}]
    other = _one_row(tenant, global_key="to-free")
    assert other["global_key"] == "to-free"


def test_patch_keeps_label_studio_extras(tenant: Tenant) -> None:
    ds = tenant.dataset()
    task = {"data": {"image": "s3://b/t.jpg"}, "annotations": [{"result": []}], "id": 7}
    tenant.import_rows(ds["id"], orjson.dumps([task]))
    [row] = list_all(tenant, dataset_id=ds["id"])
    assert row["annotations"] == [{"result": []}]
    got = tenant.patch(f"/data-rows/{row['id']}", json={"external_id": "e"}).json()
    assert got["annotations"] == [{"result": []}]
    assert got["source_id"] == 7
    assert got["external_id"] == "e"


def test_patch_another_organizations_row_is_404(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = _one_row(other_tenant, external_id="theirs")
    r = tenant.patch(f"/data-rows/{theirs['id']}", json={"external_id": "mine"})
    assert r.status_code == 404
    assert other_tenant.get(f"/data-rows/{theirs['id']}").json()["external_id"] == "theirs"


# --- changing single metadata fields (issue 12.13) ---------------------------------------

START_META: list[Row] = [
    {"name": "split", "value": "train"},
    {"name": "tag", "value": "old tag"},
    {"name": "score", "value": 1.5},
    {"name": "shot_at", "value": "2024-05-01T12:00:00Z"},
]


def _indexed(engine: Engine, row_id: int) -> list[tuple[Any, ...]]:
    """What the filters search for a row: its typed values, by field id."""
    from sqlalchemy import select

    from tether.catalog.metadata_schema import RESERVED
    from tether.db.tables import data_row_metadata as v
    from tether.db.tables import metadata_fields

    with engine.connect() as conn:
        ids = {f.key: f.id for f in RESERVED}
        ids.update(
            (k, i) for k, i in conn.execute(select(metadata_fields.c.key, metadata_fields.c.id))
        )
        rows = conn.execute(
            select(v.c.field_key, v.c.value_text, v.c.value_num, v.c.org_id, v.c.dataset_id).where(
                v.c.data_row_id == row_id
            )
        )
        return sorted((ids[k], *rest) for k, *rest in rows)


def _expected_index(tenant: Tenant, row: Row) -> list[tuple[Any, ...]]:
    """The typed values a row's metadata must have, worked out from the API's view of it."""
    kinds = {f["id"]: f["kind"] for f in tenant.get("/metadata-schema").json()["fields"]}
    out = []
    for entry in row["metadata_fields"]:
        value, kind = entry["value"], kinds[entry["schema_id"]]
        if kind == "datetime":
            typed: tuple[Any, Any] = (None, datetime.fromisoformat(value).timestamp())
        else:
            typed = (None, float(value)) if kind == "number" else (value, None)
        out.append((entry["schema_id"], *typed, tenant.org_id, row["dataset_id"]))
    return sorted(out)


def _names(row: Row) -> list[tuple[str, Any]]:
    return [(m["name"], m["value"]) for m in row["metadata_fields"]]


PATCHES: list[tuple[str, dict[str, Any], list[tuple[str, Any]]]] = [
    (
        "change one",
        {"metadata_fields_set": [{"name": "tag", "value": "new tag"}]},
        [
            ("split", "train"),
            ("tag", "new tag"),
            ("score", 1.5),
            ("shot_at", "2024-05-01T12:00:00Z"),
        ],
    ),
    (
        "change a number and a datetime",
        {
            "metadata_fields_set": [
                {"name": "score", "value": "7"},
                {"name": "shot_at", "value": "2025-01-02T03:04:05+01:00"},
            ]
        },
        [("split", "train"), ("tag", "old tag"), ("score", 7), ("shot_at", "2025-01-02T02:04:05Z")],
    ),
    (
        "add one",
        {"metadata_fields_set": [{"name": "weather", "value": "rain"}]},
        [*_names({"metadata_fields": START_META}), ("weather", "rain")],
    ),
    (
        "remove one",
        {"metadata_fields_remove": ["tag"]},
        [("split", "train"), ("score", 1.5), ("shot_at", "2024-05-01T12:00:00Z")],
    ),
    (
        "remove one the row lacks",
        {"metadata_fields_remove": ["note"]},
        _names({"metadata_fields": START_META}),
    ),
    (
        "set and remove, by schema id",
        {
            "metadata_fields_set": [
                {"schema_id": "cko8sbczn0002h2dkdaxb5kal", "value": "cko8scbz70005h2dkastwhgqt"}
            ],
            "metadata_fields_remove": ["cko8s9r5v0001h2dk9elqdidh", "score", "shot_at"],
        },
        [("split", "test")],
    ),
    (
        "beside other changes",
        {"external_id": "e2", "metadata_fields_set": [{"name": "note", "value": "n"}]},
        [*_names({"metadata_fields": START_META}), ("note", "n")],
    ),
]


@pytest.mark.parametrize(("name", "body", "expected"), PATCHES, ids=[p[0] for p in PATCHES])
def test_patch_changes_single_metadata_fields(
    tenant: Tenant, engine: Engine, name: str, body: dict[str, Any], expected: list[Any]
) -> None:
    make_fields(tenant)
    row = _one_row(
        tenant,
        global_key="g",
        external_id="e",
        metadata_fields=START_META,
        attachments=[{"type": "TEXT", "value": "a"}],
    )
    assert _indexed(engine, row["id"]) == _expected_index(tenant, row)
    r = tenant.patch(f"/data-rows/{row['id']}", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert _names(got) == expected
    kept = {k: v for k, v in row.items() if k not in ("metadata_fields", "updated_at", *body)}
    assert {k: got[k] for k in kept} == kept
    assert _indexed(engine, row["id"]) == _expected_index(tenant, got)
    for field, value in expected:  # the filters see the new values, and only those
        if field in ("split", "tag", "note", "weather"):
            spec = f"{field}:eq:{value}"
            assert [x["id"] for x in list_all(tenant, metadata=[spec])] == [row["id"]], spec
    for field, value in _names(row):
        if field in ("tag",) and (field, value) not in expected:
            assert list_all(tenant, metadata=[f"tag:eq:{value}"]) == []


BAD_PATCHES: list[tuple[dict[str, Any], str]] = [
    (
        {"metadata_fields": [], "metadata_fields_set": [{"name": "tag", "value": "x"}]},
        "replaces the whole list",
    ),
    ({"metadata_fields": [], "metadata_fields_remove": ["tag"]}, "replaces the whole list"),
    (
        {"metadata_fields_set": [{"name": "tag", "value": "x"}], "metadata_fields_remove": ["tag"]},
        "both set and removed",
    ),
    (
        {"metadata_fields_set": [{"name": "tag", "value": "x"}, {"name": "tag", "value": "y"}]},
        "set twice",
    ),
    ({"metadata_fields_remove": ["nosuch"]}, "nosuch"),
    ({"metadata_fields_set": [{"name": "nosuch", "value": 1}]}, "nosuch"),
    ({"metadata_fields_set": [{"name": "tag"}]}, "needs a name or schema_id and a value"),
    ({"metadata_fields_set": [{"name": "score", "value": "lots"}]}, "score"),
    ({"metadata_fields_set": [{"name": "split", "value": "holdout"}]}, "split"),
    ({"metadata_fields_set": [{"name": "shot_at", "value": "soon"}]}, "shot_at"),
    ({"metadata_fields_set": [{"name": "tag", "value": None}]}, "tag"),
]


def test_bad_single_field_changes_change_nothing(tenant: Tenant, engine: Engine) -> None:
    make_fields(tenant)
    row = _one_row(tenant, metadata_fields=START_META)
    before = _indexed(engine, row["id"])
    for body, words in BAD_PATCHES:
        r = tenant.patch(f"/data-rows/{row['id']}", json=body)
        assert r.status_code == 422, (body, r.text)
        assert words in r.json()["error"]["message"], (body, r.json())
        assert tenant.get(f"/data-rows/{row['id']}").json() == row
        assert _indexed(engine, row["id"]) == before
    for body in ({"metadata_fields_set": {"name": "tag"}}, {"metadata_fields_remove": "tag"}):
        assert tenant.patch(f"/data-rows/{row['id']}", json=body).status_code == 422


def test_whole_metadata_replacement_still_drops_what_is_not_sent(
    tenant: Tenant, engine: Engine
) -> None:
    make_fields(tenant)
    row = _one_row(tenant, metadata_fields=START_META)
    got = tenant.patch(
        f"/data-rows/{row['id']}", json={"metadata_fields": [{"name": "note", "value": "only"}]}
    ).json()
    assert _names(got) == [("note", "only")]
    assert _indexed(engine, row["id"]) == _expected_index(tenant, got)


# --- delete -----------------------------------------------------------------------------


def test_delete_one(tenant: Tenant, other_tenant: Tenant) -> None:
    row = _one_row(tenant, global_key="del-one", metadata_fields=[{"name": "tag", "value": "x"}])
    keep = _one_row(tenant)
    theirs = _one_row(other_tenant)
    assert tenant.delete(f"/data-rows/{theirs['id']}").status_code == 404
    assert other_tenant.get(f"/data-rows/{theirs['id']}").status_code == 200
    r = tenant.delete(f"/data-rows/{row['id']}")
    assert r.status_code == 204
    assert r.content == b""
    assert tenant.get(f"/data-rows/{row['id']}").status_code == 404
    assert tenant.delete(f"/data-rows/{row['id']}").status_code == 404
    assert list_all(tenant, tag_contains="x") == []
    assert [r["id"] for r in list_all(tenant)] == [keep["id"]]
    # Its global key is free again.
    assert _one_row(tenant, global_key="del-one")["global_key"] == "del-one"


def test_delete_many_reports_each_item(tenant: Tenant, other_tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(
        ds["id"],
        ndjson([{"row_data": f"s3://b/{i}.jpg", "global_key": f"dm-{i}"} for i in range(5)]),
    )
    rows = list_all(tenant, dataset_id=ds["id"])
    theirs = _one_row(other_tenant, global_key="dm-9")
    body = {
        "ids": [rows[0]["id"], theirs["id"], 999_999_999, rows[1]["id"]],
        "global_keys": ["dm-2", "dm-9", "nope", "dm-3"],
    }
    r = tenant.post("/data-rows/delete", json=body)
    assert r.status_code == 200, r.text
    by_id = [(rows[0]["id"], True), (theirs["id"], False), (999_999_999, False)]
    by_id.append((rows[1]["id"], True))
    by_key = [("dm-2", True), ("dm-9", False), ("nope", False), ("dm-3", True)]
    expected: list[dict[str, Any]] = [
        {"data_row_id": i, "id": i} | _outcome(n, ok) for n, (i, ok) in enumerate(by_id)
    ]
    expected += [
        {"global_key": k, "id": None} | _outcome(n, ok)
        for n, (k, ok) in enumerate(by_key, start=len(by_id))
    ]
    assert r.json()["results"] == expected
    assert [r["global_key"] for r in list_all(tenant, dataset_id=ds["id"])] == ["dm-4"]
    assert other_tenant.get(f"/data-rows/{theirs['id']}").json()["global_key"] == "dm-9"
    assert tenant.post("/data-rows/delete", json={}).json() == {"results": []}


def _outcome(index: int, ok: bool) -> dict[str, Any]:
    error = None if ok else "not found"
    code = None if ok else "not_found"
    return {"index": index, "ok": ok, "deleted": ok, "code": code, "message": error, "error": error}


# --- global keys in bulk ------------------------------------------------------------------


def test_assign_and_clear_global_keys(tenant: Tenant, other_tenant: Tenant) -> None:
    ds = tenant.dataset()
    tenant.import_rows(
        ds["id"],
        ndjson(
            [
                {"row_data": "s3://b/0.jpg", "global_key": "held"},
                {"row_data": "s3://b/1.jpg"},
                {"row_data": "s3://b/2.jpg"},
                {"row_data": "s3://b/3.jpg", "global_key": "old-3"},
            ]
        ),
    )
    rows = list_all(tenant, dataset_id=ds["id"])
    theirs = _one_row(other_tenant, global_key="theirs-key")
    r = tenant.post(
        "/data-rows/global-keys",
        json={
            "assignments": [
                {"data_row_id": rows[1]["id"], "global_key": "new-1"},
                {"data_row_id": rows[2]["id"], "global_key": "held"},
                {"data_row_id": rows[3]["id"], "global_key": "theirs-key"},
                {"data_row_id": theirs["id"], "global_key": "stolen"},
                {"data_row_id": rows[2]["id"], "global_key": ""},
                {"data_row_id": "abc", "global_key": "x"},
                {"data_row_id": rows[2]["id"], "global_key": "k" * 201},
                {"data_row_id": rows[2]["id"], "global_key": "new-1"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["ok"] for x in results] == [True, False, True, False, False, False, False, False]
    assert results[0] == {
        "index": 0,
        "id": rows[1]["id"],
        "data_row_id": rows[1]["id"],
        "global_key": "new-1",
        "ok": True,
        "code": None,
        "message": None,
        "error": None,
    }
    assert [x["index"] for x in results] == list(range(8))
    assert [x["code"] for x in results[1:]] == [
        "global_key_exists",
        None,
        "not_found",
        "invalid",
        "invalid",
        "invalid",
        "global_key_exists",
    ]
    assert all(x["message"] == x["error"] for x in results)
    assert results[1]["error"] == "global key 'held' belongs to another data row"
    assert results[3]["error"] == "data row not found"
    assert "global_key of 1-200 characters" in results[4]["error"]
    assert "integer data_row_id" in results[5]["error"]
    assert "global_key of 1-200 characters" in results[6]["error"]
    assert results[7]["error"] == "global key 'new-1' belongs to another data row"
    keys = [r["global_key"] for r in list_all(tenant, dataset_id=ds["id"])]
    assert keys == ["held", "new-1", None, "theirs-key"]
    assert other_tenant.get(f"/data-rows/{theirs['id']}").json()["global_key"] == "theirs-key"

    r = tenant.post("/data-rows/global-keys/clear", json={"global_keys": ["new-1", "nope"]})
    assert r.status_code == 200
    assert r.json()["results"] == [
        {"index": 0, "id": None, "global_key": "new-1", "ok": True, "code": None}
        | {"message": None, "error": None},
        {"index": 1, "id": None, "global_key": "nope", "ok": False, "code": "not_found"}
        | {"message": "not found", "error": "not found"},
    ]
    assert tenant.get(f"/data-rows/{rows[1]['id']}").json()["global_key"] is None
    r = tenant.post("/data-rows/global-keys/clear", json={"global_keys": ["theirs-key"]})
    assert r.json()["results"][0]["ok"] is True
    assert other_tenant.get(f"/data-rows/{theirs['id']}").json()["global_key"] == "theirs-key"


def test_same_global_key_in_two_organizations(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = _one_row(tenant, global_key="shared-key")
    theirs = _one_row(other_tenant, global_key="shared-key")
    assert mine["id"] != theirs["id"]
    for who, row in ((tenant, mine), (other_tenant, theirs)):
        r = who.post("/data-rows/lookup", json={"global_keys": ["shared-key"]})
        assert r.json()["results"] == [{"global_key": "shared-key", "data_row_id": row["id"]}]


def test_another_organizations_ids_are_404(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs_ds = other_tenant.dataset()
    job = other_tenant.import_rows(
        theirs_ds["id"], ndjson([{"row_data": "s3://b/x.jpg", "global_key": "t1"}])
    )
    [row] = list_all(other_tenant, dataset_id=theirs_ds["id"])
    assert tenant.get(f"/data-rows/{row['id']}").status_code == 404
    assert tenant.get(f"/jobs/{job['id']}").status_code == 404
    assert tenant.get(f"/jobs/{job['id']}/errors").status_code == 404
    assert tenant.post(f"/jobs/{job['id']}/cancel").status_code == 404
    assert job["id"] not in {j["id"] for j in tenant.get("/jobs").json()["items"]}
    assert other_tenant.get(f"/jobs/{job['id']}").json()["status"] == "completed"
