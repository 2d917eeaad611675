"""Manifests as Labelbox and Label Studio users have them, imported through the API: what
each fixture under tests/fixtures/manifests becomes, the format the job records, overrides of
format and media type, per-row errors, and an export → import round trip into a second
organization for every fixture.

Expected values are read from the fixture files with the standard library, never taken from
what tether produced."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Tenant

MANIFESTS = Path(__file__).parent / "fixtures" / "manifests"
IGNORED = ("id", "dataset_id", "created_at", "updated_at", "created_by")
PUBLIC = (
    *IGNORED,
    "global_key",
    "external_id",
    "media_type",
    "row_data",
    "media_attributes",
    "metadata_fields",
    "attachments",
)
SPLIT_ID = "cko8sbczn0002h2dkdaxb5kal"
TAG_ID = "cko8s9r5v0001h2dk9elqdidh"
CAPTURE_ID = "cko8sdzv70006h2dk8jg64zvb"
EMBEDDING_ID = "ckpyije740000yxdk81pbgjdc"

# file → (format the job records, rows created, rows failed)
FIXTURES = {
    "ls_export.json": ("json/label_studio", 5, 0),
    "ls_single_task.json": ("json/label_studio", 1, 0),
    "ls_flat.ndjson": ("ndjson/label_studio", 4, 0),
    "ls_tasks.csv": ("csv/label_studio", 3, 0),
    "ls_tasks.tsv": ("tsv/label_studio", 3, 0),
    "lb_rows.json": ("json/labelbox", 7, 0),
    "lb_conversational.json": ("json/labelbox", 2, 0),
    "lb_rows.ndjson": ("ndjson/labelbox", 3, 0),
    "lb_rows.csv": ("csv/labelbox", 2, 0),
    "lb_headerless.csv": ("csv/labelbox", 3, 0),
    "uris.txt": ("txt", 4, 1),
    "bad_rows.ndjson": ("ndjson/labelbox", 2, 11),
}


def text_of(name: str) -> str:
    return (MANIFESTS / name).read_bytes().decode("utf-8-sig")


def json_of(name: str) -> Any:
    return json.loads(text_of(name))


def ndjson_of(name: str) -> list[Any]:
    return [json.loads(line) for line in text_of(name).splitlines() if line.strip()]


def finished(tenant: Tenant, job: dict[str, Any]) -> dict[str, Any]:
    r = tenant.get(f"/jobs/{job['id']}")
    assert r.status_code == 200, r.text
    done: dict[str, Any] = r.json()
    assert done["status"] in ("completed", "completed_with_errors"), done
    return done


def export(tenant: Tenant, dataset_id: int) -> list[dict[str, Any]]:
    r = tenant.get(f"/datasets/{dataset_id}/export")
    assert r.status_code == 200, r.text
    return [orjson.loads(line) for line in r.content.splitlines() if line.strip()]


def load(tenant: Tenant, name: str, **params: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Import one fixture into a new dataset: (the finished job, the exported rows)."""
    ds = tenant.dataset()
    params.setdefault("filename", name)
    if params["filename"] is None:
        del params["filename"]
    job = finished(tenant, tenant.import_rows(ds["id"], (MANIFESTS / name).read_bytes(), **params))
    return job, export(tenant, ds["id"])


def import_body(
    tenant: Tenant, body: bytes | str, **params: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ds = tenant.dataset()
    job = finished(tenant, tenant.import_rows(ds["id"], body, **params))
    return job, export(tenant, ds["id"])


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in IGNORED}


def kept(row: dict[str, Any]) -> dict[str, Any]:
    """What a row keeps beyond tether's own fields (annotations, source ids ...)."""
    return {k: v for k, v in row.items() if k not in PUBLIC}


def by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["global_key"]: r for r in rows if r["global_key"]}


def meta(row: dict[str, Any]) -> dict[str, Any]:
    return {m["name"]: m["value"] for m in row["metadata_fields"]}


# --- every fixture: format, counts, round trip -------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_imports_with_the_detected_format(tenant: Tenant, name: str) -> None:
    fmt, created, failed = FIXTURES[name]
    job, rows = load(tenant, name)
    assert job["format"] == fmt
    assert job["counts"] == {"created": created, "updated": 0, "failed": failed}
    assert job["status"] == ("completed_with_errors" if failed else "completed")
    assert len(rows) == created
    assert len(tenant.errors(job["id"])) == failed


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_is_detected_the_same_without_a_file_name(tenant: Tenant, name: str) -> None:
    fmt, created, failed = FIXTURES[name]
    job, _rows = load(tenant, name, filename=None)
    assert job["format"] == fmt
    assert (job["counts"]["created"], job["counts"]["failed"]) == (created, failed)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_export_imports_into_another_organization_unchanged(
    tenant: Tenant, other_tenant: Tenant, name: str
) -> None:
    _job, rows = load(tenant, name)
    assert rows
    body = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    job, again = import_body(other_tenant, body, filename="export.ndjson")
    assert job["format"] == "ndjson/labelbox"
    assert job["counts"] == {"created": len(rows), "updated": 0, "failed": 0}
    assert {r["created_by"] for r in again} != {r["created_by"] for r in rows}
    assert [comparable(r) for r in again] == [comparable(r) for r in rows]


# --- Label Studio tasks ----------------------------------------------------------------------


def expected_kept(task: dict[str, Any]) -> dict[str, Any]:
    renamed = {"id", "created_at", "updated_at", "created_by", "dataset_id"}
    return {("source_" + k if k in renamed else k): v for k, v in task.items() if k != "data"}


def test_label_studio_export_keeps_every_key_and_json_type(tenant: Tenant) -> None:
    tasks = json_of("ls_export.json")
    _job, rows = load(tenant, "ls_export.json")
    assert [r["row_data"] for r in rows] == [t["data"] for t in tasks]
    assert [list(r["row_data"]) for r in rows] == [list(t["data"]) for t in tasks]
    assert [kept(r) for r in rows] == [expected_kept(t) for t in tasks]
    assert [r["media_type"] for r in rows] == ["IMAGE", "AUDIO", "TEXT", "VIDEO", "JSON"]
    first = rows[0]
    data = first["row_data"]
    assert data["count"] == "99" and data["score"] == 99 and data["ratio"] == 0.5
    assert data["reviewer"] is None and data["approved"] is False
    assert data["boxes"] == [[1, 2], [3.5, 4], []]
    assert data["camera"] == {"model": "X-1", "iso": 200, "lens": None, "tags": []}
    assert data["ключ 🔑"] == "значение"
    annotation = first["annotations"][0]
    assert annotation["id"] == 7 and annotation["ground_truth"] is True
    assert annotation["lead_time"] == 12.75
    assert annotation["completed_by"]["email"] == "anna@example.org"
    prediction = first["predictions"][0]
    assert (prediction["model_version"], prediction["score"]) == ("fruit-net v2 “beta”", 0.875)
    assert first["drafts"][0]["result"][0]["value"]["text"] == ["zweite\nZeile\tTab"]
    assert first["meta"] == {"source": "farm", "batch": 3}
    # the tool's own ids and times are kept as source_*, tether's are its own
    assert first["source_id"] == 101
    assert tenant.get(f"/data-rows/{first['id']}").json()["source_id"] == 101
    assert first["source_created_at"] == "2023-02-28T09:00:00Z"
    assert first["created_at"] != first["source_created_at"]


def test_one_task_object_imports_as_one_task(tenant: Tenant) -> None:
    task = json_of("ls_single_task.json")
    job, rows = load(tenant, "ls_single_task.json")
    assert job["progress"]["done"] == 1
    assert len(rows) == 1
    assert rows[0]["row_data"] == task["data"]
    assert kept(rows[0]) == {"predictions": task["predictions"], "meta": task["meta"]}
    assert rows[0]["media_type"] == "IMAGE"


def test_flat_tasks_are_their_own_data(tenant: Tenant) -> None:
    _job, rows = load(tenant, "ls_flat.ndjson")
    assert [r["row_data"] for r in rows] == ndjson_of("ls_flat.ndjson")
    assert [r["media_type"] for r in rows] == ["IMAGE", "HTML", "PDF", "TEXT"]
    assert rows[0]["row_data"]["🔖 marke"] == "rot"


def test_label_studio_csv_columns_are_data_keys(tenant: Tenant) -> None:
    expected = list(csv.DictReader(io.StringIO(text_of("ls_tasks.csv"), newline="")))
    _job, rows = load(tenant, "ls_tasks.csv")
    assert [r["row_data"] for r in rows] == expected
    assert rows[0]["row_data"]["caption"] == 'Äpfel, Birnen und "Quitten"'
    assert rows[0]["row_data"]["note, with comma"] == "zeile eins\r\nzeile zwei"
    assert rows[1]["row_data"]["note, with comma"] == ""
    assert rows[2]["row_data"]["caption"] == "  leading and trailing spaces  "
    assert rows[2]["row_data"]["😀 mood"] == ""
    assert {r["media_type"] for r in rows} == {"IMAGE"}


def test_label_studio_tsv_keeps_quotes(tenant: Tenant) -> None:
    lines = text_of("ls_tasks.tsv").splitlines()
    header = lines[0].split("\t")
    expected = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    _job, rows = load(tenant, "ls_tasks.tsv")
    assert [r["row_data"] for r in rows] == expected
    assert rows[1]["row_data"]["text"] == 'He said "no", twice "'
    assert {r["media_type"] for r in rows} == {"TEXT"}


# --- Labelbox rows ---------------------------------------------------------------------------


def test_labelbox_rows(tenant: Tenant) -> None:
    source = json_of("lb_rows.json")
    _job, rows = load(tenant, "lb_rows.json")
    keyed = by_key(rows)
    street = keyed["street-0001"]
    assert street["row_data"] == source[0]["row_data"]
    assert street["external_id"] == "Straße 1"
    assert street["media_type"] == "IMAGE"
    assert street["media_attributes"] == source[0]["media_attributes"]
    assert street["attachments"] == source[0]["attachments"]
    assert street["metadata_fields"] == [
        {"schema_id": TAG_ID, "name": "tag", "value": "nacht 🌙"},
        {"schema_id": SPLIT_ID, "name": "split", "value": "train"},
        {"schema_id": CAPTURE_ID, "name": "captureDateTime", "value": "2024-05-01T10:30:00Z"},
    ]
    legacy = next(r for r in rows if r["external_id"] == "legacy-7")
    assert legacy["row_data"] == "gs://old-bucket/Scans (2019)/page 7.TIFF"
    assert legacy["media_type"] == "IMAGE"
    assert meta(legacy) == {"split": "test"}
    for key, index, kind in (
        ("doc-camel", 2, "PDF"),
        ("doc-snake", 3, "PDF"),
        ("tiles-camel", 4, "TMS_GEO"),
        ("tiles-snake", 5, "TMS_GEO"),
    ):
        assert keyed[key]["row_data"] == source[index]["row_data"]
        assert list(keyed[key]["row_data"]) == list(source[index]["row_data"])
        assert keyed[key]["media_type"] == kind
    text_row = keyed["Bild-ß-😀"]
    assert text_row["row_data"] == source[6]["row_data"]
    assert text_row["media_type"] == "TEXT"
    assert kept(text_row) == {"bemerkung 📝": source[6]["bemerkung 📝"]}


def test_filter_by_reserved_metadata_from_schema_ids(tenant: Tenant) -> None:
    _job, rows = load(tenant, "lb_rows.json")
    r = tenant.get(
        "/data-rows", params={"dataset_id": rows[0]["dataset_id"], "metadata": "split:eq:test"}
    )
    assert r.status_code == 200, r.text
    assert [row["external_id"] for row in r.json()["items"]] == ["legacy-7"]


def test_legacy_conversational_rows(tenant: Tenant) -> None:
    source = json_of("lb_conversational.json")
    _job, rows = load(tenant, "lb_conversational.json")
    assert [r["external_id"] for r in rows] == ["Gespräch-1", "Gespräch-2"]
    assert [r["media_type"] for r in rows] == ["CONVERSATIONAL", "CONVERSATIONAL"]
    for row, item in zip(rows, source, strict=True):
        assert row["row_data"] == {
            "conversationalData": item["conversationalData"],
            "type": item["type"],
            "version": item["version"],
        }
        assert row["attachments"] == item.get("attachments", [])
        assert kept(row) == {}


def test_labelbox_ndjson_with_camel_case_keys(tenant: Tenant) -> None:
    source = ndjson_of("lb_rows.ndjson")
    _job, rows = load(tenant, "lb_rows.ndjson")
    cam, audio, video = rows
    assert (cam["global_key"], cam["row_data"]) == ("cam-3-12", "s3://cams/Tor 3/frame (12).PNG")
    assert cam["media_type"] == "IMAGE"
    assert meta(cam) == {"split": "valid", "embedding": source[0]["metadata"][1]["value"]}
    assert (audio["external_id"], audio["media_type"]) == ("grüße", "AUDIO")
    assert audio["row_data"] == "https://media.example.org/audio/Grüße.wav"
    assert (video["media_type"], meta(video)) == ("VIDEO", {"tag": "drohne ✈"})


def test_labelbox_csv_maps_columns_by_name(tenant: Tenant) -> None:
    source = list(csv.DictReader(io.StringIO(text_of("lb_rows.csv"), newline="")))
    _job, rows = load(tenant, "lb_rows.csv")
    first, second = rows
    assert (
        first["row_data"] == source[0]["Data URL"] == "https://img.example.org/bild.jpg?a=1,2&b=(3)"
    )
    assert (first["external_id"], first["global_key"]) == ("außen-1", "gk-csv-1")
    assert meta(first) == {
        "split": "train",
        "tag": "sonnig, warm ☀",
        "captureDateTime": "2024-06-01T08:00:00Z",
    }
    assert kept(first) == {"Kommentar 💬": "erste Zeile"}
    assert second["row_data"] == "s3://bucket/Ordner A/bild 2.JPEG"
    assert meta(second) == {"split": "test"}
    assert kept(second) == {}


def test_labelbox_csv_columns_named_after_custom_fields(tenant: Tenant) -> None:
    r = tenant.post("/metadata-schema", json={"name": "Wetter 🌦", "kind": "string"})
    assert r.status_code == 201, r.text
    body = "external_id,row_data,Wetter 🌦,other\ne1,s3://b/a.png,Regen,x\n"
    _job, rows = import_body(tenant, body, filename="rows.csv")
    assert meta(rows[0]) == {"Wetter 🌦": "Regen"}
    assert kept(rows[0]) == {"other": "x"}


def test_headerless_csv_is_positional(tenant: Tenant) -> None:
    _job, rows = load(tenant, "lb_headerless.csv")
    assert [(r["row_data"], r["external_id"]) for r in rows] == [
        ("s3://bucket/a.png", "ext-a"),
        ("https://img.example.org/b (2).jpg", "ext-b"),
        ("gs://bucket/c.gif", None),
    ]
    assert [r["media_type"] for r in rows] == ["IMAGE", "IMAGE", "IMAGE"]


# --- URIs as written -------------------------------------------------------------------------


def test_text_file_keeps_uris_exactly(tenant: Tenant) -> None:
    lines = [line for line in text_of("uris.txt").splitlines() if line]
    job, rows = load(tenant, "uris.txt")
    assert [r["row_data"] for r in rows] == [lines[0], *lines[2:]]
    assert [r["media_type"] for r in rows] == ["IMAGE", "VIDEO", "IMAGE", "TMS_GEO"]
    [error] = tenant.errors(job["id"])
    assert (error["index"], error["code"]) == (1, "invalid_row_data")
    assert error["message"].startswith(f"row_data {lines[1]!r} is a folder")


# --- per-row errors --------------------------------------------------------------------------


def test_bad_rows_are_reported_and_good_rows_land(tenant: Tenant) -> None:
    job, rows = load(tenant, "bad_rows.ndjson")
    assert [r["row_data"] for r in rows] == ["s3://b/good-1.png", "s3://b/good-2.webp"]
    errors = tenant.errors(job["id"])
    got = [(e["index"], e["global_key"], e["code"]) for e in errors]
    assert got == [
        (0, None, "missing_row_data"),
        (1, "twice", "invalid_metadata"),
        (2, "when", "invalid_metadata"),
        (4, "pdf-as-text", "media_type_mismatch"),
        (5, "pdf-twice", "duplicate_field"),
        (6, None, "duplicate_field"),
        (7, "folder", "invalid_row_data"),
        (8, "zoom", "invalid_row_data"),
        (9, "bounds", "invalid_row_data"),
        (10, "mp4-as-image", "media_type_mismatch"),
        (11, "alt-layer", "invalid_row_data"),
    ]
    messages = {e["index"]: e["message"] for e in errors}
    assert errors[0]["external_id"] == "ohne-daten"
    assert messages[1] == "metadata field 'split' is given twice"
    assert (
        "'captureDateTime'" in messages[2] and "'03/04/2024 10:00' is not ISO 8601" in (messages[2])
    )
    assert "2024-05-01T12:30:00Z" in messages[2]
    assert "media_type TEXT contradicts row_data" in messages[4] and "PDF" in messages[4]
    assert "pdf_url twice" in messages[5]
    assert "global_key is given twice" in messages[6]
    assert "is a folder" in messages[7]
    assert "min_zoom 18 is larger than row_data.max_zoom 3" in messages[8]
    assert "bounds" in messages[9]
    assert "media_type IMAGE contradicts" in messages[10] and "VIDEO" in messages[10]
    assert "alternative_layers[0].tile_layer_url" in messages[11]


# --- overriding the format and the media type ------------------------------------------------


def test_format_override_reads_a_csv_named_file_as_text(tenant: Tenant) -> None:
    body = "s3://fruit/apples,pears.jpg\ns3://fruit/plums,figs.png\n"
    job, rows = import_body(tenant, body, filename="list.csv")
    assert job["format"] == "csv/labelbox"  # detected: URL, then an external ID
    assert rows == []
    errors = tenant.errors(job["id"])
    assert [(e["external_id"], e["code"]) for e in errors] == [
        ("pears.jpg", "invalid_media_type"),
        ("figs.png", "invalid_media_type"),
    ]
    job, rows = import_body(tenant, body, filename="list.csv", format="txt")
    assert job["format"] == "txt"
    assert [r["row_data"] for r in rows] == [
        "s3://fruit/apples,pears.jpg",
        "s3://fruit/plums,figs.png",
    ]
    assert [r["media_type"] for r in rows] == ["IMAGE", "IMAGE"]


def test_format_override_with_a_flavor(tenant: Tenant) -> None:
    body = "url,label\ns3://b/a.jpg,cat\n"
    job, rows = import_body(tenant, body, filename="x.csv")
    assert job["format"] == "csv/label_studio"
    assert rows[0]["row_data"] == {"url": "s3://b/a.jpg", "label": "cat"}
    job, rows = import_body(tenant, body, filename="x.csv", format="csv/labelbox")
    assert job["format"] == "csv/labelbox"
    assert (rows[0]["row_data"], kept(rows[0])) == ("s3://b/a.jpg", {"label": "cat"})

    labelled = "image,global_key\ns3://b/b.jpg,g-1\n"
    job, rows = import_body(tenant, labelled, filename="y.csv", format="csv/label_studio")
    assert job["format"] == "csv/label_studio"
    assert rows[0]["row_data"] == {"image": "s3://b/b.jpg", "global_key": "g-1"}
    assert rows[0]["global_key"] is None


def test_flavor_override_alone_keeps_container_detection(tenant: Tenant) -> None:
    tasks = [{"image": "s3://b/a.jpg", "metadata": "camera 2"}]
    body = json.dumps(tasks)
    job, rows = import_body(tenant, body)
    assert job["format"] == "json/labelbox"
    assert rows == []  # a Labelbox row (it has `metadata`) without row_data
    assert tenant.errors(job["id"])[0]["code"] == "missing_row_data"
    job, rows = import_body(tenant, body, format="label_studio")
    assert job["format"] == "json/label_studio"
    assert rows[0]["row_data"] == tasks[0]


def test_unknown_format_is_refused(tenant: Tenant) -> None:
    ds = tenant.dataset()
    r = tenant.post(f"/datasets/{ds['id']}/data-rows", content=b"[]", params={"format": "xml"})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "unknown format 'xml'" in message and "csv/label_studio" in message


def test_media_type_override_for_a_whole_import(tenant: Tenant) -> None:
    body = "\n".join(json.dumps({"data": {"picture": f"/p/{i}"}}) for i in range(3))
    _job, rows = import_body(tenant, body)
    assert [r["media_type"] for r in rows] == ["TEXT", "TEXT", "TEXT"]
    _job, rows = import_body(tenant, body, media_type="image")
    assert [r["media_type"] for r in rows] == ["IMAGE", "IMAGE", "IMAGE"]
    assert [r["row_data"] for r in rows] == [{"picture": f"/p/{i}"} for i in range(3)]


def test_media_type_override_that_contradicts_rows(tenant: Tenant) -> None:
    items = [
        {"row_data": {"pdfUrl": "https://docs.example.org/a.pdf"}, "global_key": "pdf"},
        {"row_data": "s3://b/a.mp4", "global_key": "mp4", "media_type": "AUDIO"},
        {"row_data": "s3://b/b.jpg", "global_key": "jpg"},
        {"data": {"image": "s3://b/c.jpg", "text": "t"}},
    ]
    body = "\n".join(json.dumps(i) for i in items)
    job, rows = import_body(tenant, body, media_type="VIDEO")
    assert [(r["global_key"], r["media_type"]) for r in rows] == [("mp4", "VIDEO"), (None, "VIDEO")]
    errors = tenant.errors(job["id"])
    assert [(e["index"], e["code"]) for e in errors] == [
        (0, "media_type_mismatch"),
        (2, "media_type_mismatch"),
    ]
    assert "PDF" in errors[0]["message"] and "IMAGE" in errors[1]["message"]
